/* Recursive ReadDirectoryChangesW with a large buffer, on a thread, feeding the loop. */
#include "rdcw.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <windows.h>

#include "dynbuf.h"
#include "log.h"

/* What the kernel reports: names, directory names, growth, and closes (last write). */
#define FILTER                                                                                     \
    (FILE_NOTIFY_CHANGE_FILE_NAME | FILE_NOTIFY_CHANGE_DIR_NAME | FILE_NOTIFY_CHANGE_SIZE |        \
     FILE_NOTIFY_CHANGE_LAST_WRITE | FILE_NOTIFY_CHANGE_CREATION)

/* The queue between the thread and the loop holds at most this much; past it the names
 * are dropped and an overflow reported instead (the owner rescans). */
#define QUEUE_MAX (16u << 20)

/* A network share refuses a read of more than this. */
#define NET_MAX 65536u

struct rdcw {
    uv_loop_t *loop;
    uv_async_t async;
    uv_thread_t thread;
    bool thread_running;
    uv_mutex_t mu;
    HANDLE dir, ready, stop;
    OVERLAPPED ov; /* the read in flight */
    DWORD size;
    void *buf;
    char *root; /* for messages */
    /* Records: 'N' name NUL, 'O' (overflow), 'L' (the buffer was cut to 64 KiB), or 'E'
     * followed by a libuv error as text. */
    struct dynbuf queue;
    bool queue_overflowed; /* an 'O' is already queued behind the dropped names */
    rdcw_cb cb;
    void *data;
    bool closing;
    void (*closed)(void *data);
};

/* Thread side: queues one record (under the lock); the caller wakes the loop. */
static void push(struct rdcw *r, char kind, const char *text, size_t n)
{
    uv_mutex_lock(&r->mu);
    if (kind == 'N' && r->queue_overflowed) {
        uv_mutex_unlock(&r->mu); /* an overflow is queued already: the rescan covers it */
        return;
    }
    size_t mark = r->queue.len;
    if (dynbuf_add(&r->queue, &kind, 1) < 0 || (n > 0 && dynbuf_add(&r->queue, text, n) < 0) ||
        dynbuf_add(&r->queue, "", 1) < 0) {
        /* Full (the loop is far behind) or out of memory: one overflow replaces every name
         * queued, since the owner rescans the whole root anyway. */
        r->queue.len = mark;
        dynbuf_reset(&r->queue);
        static const char o[2] = {'O', '\0'};
        (void)dynbuf_add(&r->queue, o, 2);
        if (kind == 'E')
            (void)dynbuf_add(&r->queue, &kind, 1), (void)dynbuf_add(&r->queue, text, n + 1);
        r->queue_overflowed = true;
    } else if (kind == 'O') {
        r->queue_overflowed = true;
    }
    uv_mutex_unlock(&r->mu);
}

static void push_error(struct rdcw *r, DWORD err)
{
    char text[24];
    int n = snprintf(text, sizeof(text), "%d", uv_translate_sys_error((int)err));
    push(r, 'E', text, (size_t)n);
    uv_async_send(&r->async);
}

/* Queues the names of one completed read of `n` bytes. */
static void push_names(struct rdcw *r, DWORD n)
{
    const unsigned char *p = r->buf, *end = p + n;
    char name[4 * 1024 + 8];
    for (;;) {
        const FILE_NOTIFY_INFORMATION *fi = (const FILE_NOTIFY_INFORMATION *)p;
        if ((const unsigned char *)fi->FileName > end ||
            (const unsigned char *)fi->FileName + fi->FileNameLength > end)
            break; /* never trust a length past the bytes read */
        int len = WideCharToMultiByte(CP_UTF8, 0, fi->FileName, (int)(fi->FileNameLength / 2), name,
                                      (int)sizeof(name) - 1, NULL, NULL);
        if (len > 0) {
            for (int i = 0; i < len; i++)
                if (name[i] == '\\')
                    name[i] = '/';
            push(r, 'N', name, (size_t)len);
        } else if (fi->FileNameLength > 0) {
            push(r, 'O', NULL, 0); /* a name we cannot convert: look at everything again */
        }
        if (fi->NextEntryOffset == 0 || fi->NextEntryOffset > (DWORD)(end - p))
            break;
        p += fi->NextEntryOffset;
    }
    uv_async_send(&r->async);
}

/* Asks for the next batch of changes (overlapped: it completes into r->buf and signals
 * r->ready). Returns 0 or the Windows error. */
static DWORD issue(struct rdcw *r)
{
    memset(&r->ov, 0, sizeof(r->ov));
    r->ov.hEvent = r->ready;
    ResetEvent(r->ready);
    for (;;) {
        if (ReadDirectoryChangesW(r->dir, r->buf, r->size, TRUE, FILTER, NULL, &r->ov, NULL))
            return 0;
        DWORD err = GetLastError();
        if (err != ERROR_INVALID_PARAMETER || r->size <= NET_MAX)
            return err;
        /* A network share: at most 64 KiB per read (said on the loop thread). */
        r->size = NET_MAX;
        push(r, 'L', NULL, 0);
    }
}

/* The reader thread: waits for each read to complete, queues what it brought and asks
 * for the next. The first read was issued by rdcw_start, before it returned: Windows
 * keeps changes for a directory handle only from its first read on, and the owner walks
 * the directory right after watching it. */
static void run(void *arg)
{
    struct rdcw *r = arg;
    for (;;) {
        HANDLE both[2] = {r->ready, r->stop};
        DWORD which = WaitForMultipleObjects(2, both, FALSE, INFINITE);
        DWORD n = 0;
        if (which != WAIT_OBJECT_0) {
            CancelIoEx(r->dir, &r->ov);
            GetOverlappedResult(r->dir, &r->ov, &n, TRUE);
            return;
        }
        if (!GetOverlappedResult(r->dir, &r->ov, &n, FALSE)) {
            DWORD err = GetLastError();
            if (err != ERROR_NOTIFY_ENUM_DIR) {
                push_error(r, err); /* the directory itself went away, or access was lost */
                return;
            }
            n = 0; /* more changes than the buffer holds */
        }
        if (n == 0) {
            /* The changes did not fit the buffer: the kernel dropped them. */
            push(r, 'O', NULL, 0);
            uv_async_send(&r->async);
        } else {
            push_names(r, n);
        }
        DWORD err = issue(r);
        if (err) {
            push_error(r, err);
            return;
        }
    }
}

/* Loop side: takes the queue and hands every record to the owner. */
static void on_async(uv_async_t *a)
{
    struct rdcw *r = a->data;
    if (r->closing)
        return; /* nothing more is delivered */
    uv_mutex_lock(&r->mu);
    struct dynbuf q = r->queue;
    dynbuf_init(&r->queue, QUEUE_MAX);
    r->queue_overflowed = false;
    uv_mutex_unlock(&r->mu);
    for (size_t i = 0; i < q.len && !r->closing;) {
        const char *rec = q.p + i;
        size_t n = strlen(rec);
        if (rec[0] == 'N')
            r->cb(r->data, rec + 1, 0);
        else if (rec[0] == 'O')
            r->cb(r->data, NULL, 0);
        else if (rec[0] == 'L')
            em_log(EM_LOG_WARN, "%s: the change buffer is limited to 64 KiB here (a network share)",
                   r->root);
        else
            r->cb(r->data, NULL, (int)strtol(rec + 1, NULL, 10));
        i += n + 1;
    }
    dynbuf_free(&q);
}

static wchar_t *widen(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
    if (n <= 0)
        return NULL;
    wchar_t *w = malloc((size_t)n * sizeof(*w));
    if (w && MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n) != n) {
        free(w);
        return NULL;
    }
    for (int i = 0; w && i < n; i++)
        if (w[i] == L'/')
            w[i] = L'\\';
    return w;
}

static void release(struct rdcw *r)
{
    if (r->dir != INVALID_HANDLE_VALUE && r->dir)
        CloseHandle(r->dir);
    if (r->ready)
        CloseHandle(r->ready);
    if (r->stop)
        CloseHandle(r->stop);
    dynbuf_free(&r->queue);
    uv_mutex_destroy(&r->mu);
    free(r->buf);
    free(r->root);
    free(r);
}

int rdcw_start(uv_loop_t *loop, const char *path, size_t bufsize, rdcw_cb cb, void *data,
               struct rdcw **out)
{
    if (bufsize < 4096)
        bufsize = 4096;
    if (bufsize > (16u << 20))
        bufsize = 16u << 20;
    struct rdcw *r = calloc(1, sizeof(*r));
    if (!r)
        return UV_ENOMEM;
    if (uv_mutex_init(&r->mu) < 0) {
        free(r);
        return UV_ENOMEM;
    }
    dynbuf_init(&r->queue, QUEUE_MAX);
    r->loop = loop;
    r->cb = cb;
    r->data = data;
    r->size = (DWORD)(bufsize & ~(size_t)7);
    r->buf = malloc(r->size);
    r->root = strdup(path);
    wchar_t *wpath = widen(path);
    r->dir = INVALID_HANDLE_VALUE;
    if (!r->buf || !r->root || !wpath) {
        free(wpath);
        release(r);
        return UV_ENOMEM;
    }
    r->dir = CreateFileW(wpath, FILE_LIST_DIRECTORY,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                         OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OVERLAPPED, NULL);
    DWORD err = GetLastError();
    free(wpath);
    if (r->dir == INVALID_HANDLE_VALUE) {
        release(r);
        return uv_translate_sys_error((int)err);
    }
    r->ready = CreateEventW(NULL, TRUE, FALSE, NULL);
    r->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!r->ready || !r->stop) {
        release(r);
        return UV_ENOMEM;
    }
    DWORD err2 = issue(r);
    if (err2) {
        release(r);
        return uv_translate_sys_error((int)err2);
    }
    uv_async_init(loop, &r->async, on_async);
    r->async.data = r;
    if (r->queue.len)
        uv_async_send(&r->async); /* the buffer was cut to 64 KiB: say so */
    if (uv_thread_create(&r->thread, run, r) < 0) {
        CancelIoEx(r->dir, &r->ov);
        DWORD n;
        GetOverlappedResult(r->dir, &r->ov, &n, TRUE);
        rdcw_close(r, NULL); /* released once the async handle has closed */
        return UV_EAGAIN;
    }
    r->thread_running = true;
    *out = r;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    struct rdcw *r = h->data;
    void (*closed)(void *) = r->closed;
    void *data = r->data;
    release(r);
    if (closed)
        closed(data);
}

void rdcw_close(struct rdcw *r, void (*closed)(void *data))
{
    if (!r)
        return;
    if (r->thread_running) {
        SetEvent(r->stop);
        uv_thread_join(&r->thread);
        r->thread_running = false;
    }
    r->closing = true;
    r->closed = closed;
    uv_close((uv_handle_t *)&r->async, on_closed);
}
