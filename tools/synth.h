/* synth.h — em-synth's built-in templates (generated from tools/templates/). */
#ifndef EM_SYNTH_H
#define EM_SYNTH_H

struct synth_builtin {
    const char *name; /* "session.dm", ... */
    const char *text;
};

/* Ends with a {NULL, NULL} entry. */
extern const struct synth_builtin synth_builtins[];

#endif
