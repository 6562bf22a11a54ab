/*
 * faultfs: an LD_PRELOAD shim that makes chosen fsync/fdatasync/rename calls fail, for the
 * fault-injection tests (tests/integration/test_fault_injection.py, helper in tests/faultinject.py).
 *
 * Design
 * ------
 * It wraps fsync(2), fdatasync(2), rename(2), renameat(2) and renameat2(2) in libc. On each
 * call it reads the control file named by $AOFNODE_FAULT_FILE (no variable, or no file: the
 * call goes straight to libc), one rule per line:
 *
 *     <op> <pattern> <skip> <count> [<errno>]
 *
 *   op       fsync | fdatasync | rename (rename also covers renameat and renameat2)
 *   pattern  a substring of the call's path, or "=<path>" for the exact path. For fsync and
 *            fdatasync the path is the fd's target, readlink("/proc/self/fd/N"); for rename it
 *            is either the old or the new path (made absolute).
 *   skip     how many matching calls still succeed before the failures start
 *   count    how many matching calls then fail; -1 fails every one until the rule is removed
 *   errno    the error to fail with, a number; EIO (5) if left out
 *
 * The first rule whose op and pattern match a call decides it. The counters live in the file,
 * not in memory: the shim takes flock(LOCK_EX) on the file, reads it, decrements skip (or
 * count) of that rule and writes the file back before it lets go. So the node's processes (a
 * forked rewrite child included) and their threads share one count, the test can arm, re-arm
 * and disarm at any time by rewriting the file under the same lock, and it can read the file to
 * see how much of a rule is left. Every injected failure is also appended, as one line
 * "<pid> <op> <path> <errno>", to "$AOFNODE_FAULT_FILE.fired".
 *
 * Not promised: a control file larger than 4 KiB is read only in part; a path longer than
 * PATH_MAX is not matched. The shim never changes what reaches the disk: a failed call does
 * nothing at all (a real EIO may also have dropped dirty pages; this one has not).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define CONTROL_MAX 4096

typedef int (*fd_fn)(int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*renameat_fn)(int, const char *, int, const char *);
typedef int (*renameat2_fn)(int, const char *, int, const char *, unsigned int);

static void *next_symbol(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Does rule pattern `pat` match `path`? "=x" is an exact match, anything else a substring. */
static int pattern_matches(const char *pat, const char *path)
{
    if (path == NULL || path[0] == '\0')
        return 0;
    if (pat[0] == '=')
        return strcmp(pat + 1, path) == 0;
    return strstr(path, pat) != NULL;
}

static void record_fired(const char *control, const char *op, const char *path, int err)
{
    char name[PATH_MAX + 8];
    char line[2 * PATH_MAX];
    int fd, len;

    if (snprintf(name, sizeof name, "%s.fired", control) >= (int)sizeof name)
        return;
    fd = open(name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    len = snprintf(line, sizeof line, "%d %s %s %d\n", (int)getpid(), op, path, err);
    if (len > 0 && len < (int)sizeof line && write(fd, line, (size_t)len) < 0) {
        /* nothing to do: the record is for the test's eyes only */
    }
    close(fd);
}

/*
 * Decide one call: 0 to let it through, else the errno to fail it with. `path2` may be NULL.
 * Keeps the caller's errno unchanged.
 */
static int injected_error(const char *op, const char *path1, const char *path2)
{
    const char *control = getenv("AOFNODE_FAULT_FILE");
    char in[CONTROL_MAX], out[CONTROL_MAX + 256];
    char *line, *save = NULL;
    size_t used = 0;
    ssize_t n;
    int fd, decided = 0, changed = 0, result = 0, saved_errno = errno;
    const char *hit = NULL;

    if (control == NULL || control[0] == '\0')
        return 0;
    fd = open(control, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        errno = saved_errno;
        return 0;
    }
    if (flock(fd, LOCK_EX) != 0) {
        close(fd);
        errno = saved_errno;
        return 0;
    }
    n = pread(fd, in, sizeof in - 1, 0);
    in[n > 0 ? n : 0] = '\0';

    for (line = strtok_r(in, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char rule_op[32], pat[PATH_MAX + 2];
        long skip, count, err = EIO;
        int fields = sscanf(line, "%31s %4097s %ld %ld %ld", rule_op, pat, &skip, &count, &err);
        int w;

        if (fields >= 4 && !decided && strcmp(rule_op, op) == 0) {
            const char *p = pattern_matches(pat, path1) ? path1
                          : pattern_matches(pat, path2) ? path2 : NULL;
            if (p != NULL) {
                decided = 1;
                if (skip > 0) {
                    skip--;
                    changed = 1;
                } else if (count != 0) {
                    result = (int)err;
                    hit = p;
                    if (count > 0) {
                        count--;
                        changed = 1;
                    }
                }
            }
        }
        if (fields >= 4)
            w = snprintf(out + used, sizeof out - used, "%s %s %ld %ld %ld\n",
                         rule_op, pat, skip, count, err);
        else
            w = snprintf(out + used, sizeof out - used, "%s\n", line);
        if (w < 0 || (size_t)w >= sizeof out - used) {
            changed = 0; /* would not fit: leave the file as it was */
            break;
        }
        used += (size_t)w;
    }
    if (changed && pwrite(fd, out, used, 0) == (ssize_t)used) {
        if (ftruncate(fd, (off_t)used) != 0) {
            /* a shorter file than before keeps a stale tail, which parses as extra rules that
             * repeat the last ones; only possible if ftruncate fails on a regular file */
        }
    }
    flock(fd, LOCK_UN);
    close(fd);
    if (result != 0)
        record_fired(control, op, hit, result);
    errno = saved_errno;
    return result;
}

/* The target of an fd ("/path/file", "/path/file (deleted)", "socket:[...]"). */
static const char *fd_path(int fd, char *buf, size_t size)
{
    char link[64];
    ssize_t n;

    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, buf, size - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

/* `path` made absolute against `dirfd` (AT_FDCWD: the working directory). */
static const char *absolute(int dirfd, const char *path, char *buf, size_t size)
{
    char base[PATH_MAX];

    if (path == NULL || path[0] == '/')
        return path;
    if (dirfd == AT_FDCWD) {
        if (getcwd(base, sizeof base) == NULL)
            return path;
    } else if (fd_path(dirfd, base, sizeof base) == NULL) {
        return path;
    }
    if (snprintf(buf, size, "%s/%s", base, path) >= (int)size)
        return path;
    return buf;
}

static int fail_fd_call(const char *op, int fd)
{
    char path[PATH_MAX];
    int err = injected_error(op, fd_path(fd, path, sizeof path), NULL);

    if (err != 0)
        errno = err;
    return err;
}

int fsync(int fd)
{
    static fd_fn real;

    if (real == NULL)
        real = (fd_fn)next_symbol("fsync");
    if (fail_fd_call("fsync", fd) != 0)
        return -1;
    return real(fd);
}

int fdatasync(int fd)
{
    static fd_fn real;

    if (real == NULL)
        real = (fd_fn)next_symbol("fdatasync");
    if (fail_fd_call("fdatasync", fd) != 0)
        return -1;
    return real(fd);
}

static int fail_rename(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    char a[PATH_MAX], b[PATH_MAX];
    int err = injected_error("rename", absolute(olddirfd, oldpath, a, sizeof a),
                             absolute(newdirfd, newpath, b, sizeof b));

    if (err != 0)
        errno = err;
    return err;
}

int rename(const char *oldpath, const char *newpath)
{
    static rename_fn real;

    if (real == NULL)
        real = (rename_fn)next_symbol("rename");
    if (fail_rename(AT_FDCWD, oldpath, AT_FDCWD, newpath) != 0)
        return -1;
    return real(oldpath, newpath);
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    static renameat_fn real;

    if (real == NULL)
        real = (renameat_fn)next_symbol("renameat");
    if (fail_rename(olddirfd, oldpath, newdirfd, newpath) != 0)
        return -1;
    return real(olddirfd, oldpath, newdirfd, newpath);
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags)
{
    static renameat2_fn real;

    if (real == NULL)
        real = (renameat2_fn)next_symbol("renameat2");
    if (fail_rename(olddirfd, oldpath, newdirfd, newpath) != 0)
        return -1;
    return real(olddirfd, oldpath, newdirfd, newpath, flags);
}
