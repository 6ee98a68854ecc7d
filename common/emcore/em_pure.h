/* em_pure.h — what parsers/ may not do, made a compile error (DESIGN §2).
 *
 * The parsers are pure code: bytes in, structs and JSON out. The build forces this header
 * into every parsers/ file (-include), so a call that reads or writes files, prints, logs
 * or starts a thread there fails to compile instead of being found in review. The system
 * and library headers that declare those names are included first: their declarations
 * are fine, only uses are refused. The functions every file may not use (STYLE §9) are
 * refused as well.
 */
#ifndef EM_PURE_H
#define EM_PURE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>

/* mingw defines some of these as macros (popen is _popen): poisoning needs the name. */
#ifdef popen
#undef popen
#endif
/* File and directory I/O, output, processes and threads. */
#pragma GCC poison fopen freopen fdopen fread fwrite fgets fputs fputc fprintf vfprintf
#pragma GCC poison printf vprintf puts putchar getchar scanf fscanf perror
#pragma GCC poison open openat creat read write pread pwrite lseek close
#pragma GCC poison opendir readdir stat lstat fstat unlink rename remove mkdir rmdir
#pragma GCC poison system popen fork exec execv execvp pthread_create thrd_create
#pragma GCC poison xmlReadFile xmlParseFile xmlCtxtReadFile xmlNewInputFromFile
/* The project's logging: parsers report through their diagnostics, never a log line. */
#pragma GCC poison em_log_write em_log_open em_log_threshold
/* Banned everywhere (STYLE §9). */
#pragma GCC poison sprintf vsprintf strcpy strcat strtok atoi atol gmtime localtime ctime asctime

#endif
