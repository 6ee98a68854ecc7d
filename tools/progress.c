#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include <uv.h>

void progress_init(struct progress *p, bool quiet)
{
    p->on = !quiet && isatty(2);
    p->start_ns = uv_hrtime();
    p->last_ns = 0;
    p->drawn = false;
}

void progress_show(struct progress *p, const char *what, uint64_t done, uint64_t total,
                   const char *detail, bool force)
{
    if (!p->on)
        return;
    uint64_t now = uv_hrtime();
    if (!force && p->drawn && now - p->last_ns < 200000000ull)
        return;
    p->last_ns = now;
    p->drawn = true;
    double elapsed = (double)(now - p->start_ns) / 1e9;
    if (total) {
        if (done > total)
            done = total;
        double f = (double)done / (double)total;
        char bar[31];
        int fill = (int)(f * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[30] = '\0';
        double eta = f > 0.001 ? elapsed / f - elapsed : 0;
        fprintf(stderr, "\r%s [%s] %3d%% %s, %.0f s, eta %.0f s\033[K", what, bar, (int)(f * 100),
                detail, elapsed, eta);
    } else {
        fprintf(stderr, "\r%s %s, %.0f s\033[K", what, detail, elapsed);
    }
    fflush(stderr);
}

void progress_done(struct progress *p)
{
    if (p->on && p->drawn)
        fputc('\n', stderr);
    p->drawn = false;
}
