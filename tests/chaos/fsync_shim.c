/* LD_PRELOAD shim: makes fsync and fdatasync fail with EIO or stall, as the file named by
 * CHAOS_FSYNC_CTL says ("fail", "stall <ms>", anything else or no file: pass through).
 * The file is read on every call so that a test can change the mode of a running broker;
 * an fsync costs far more than that read. A failing call skips the real fsync, as a disk
 * that lost the write would, so whatever trusts the data afterwards trusts nothing. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int gate(void) {
    const char *path = getenv("CHAOS_FSYNC_CTL");
    if (path == NULL) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[32] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    if (strncmp(buf, "fail", 4) == 0) {
        errno = EIO;
        return -1;
    }
    if (strncmp(buf, "stall", 5) == 0) {
        long ms = atol(buf + 5);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return 0;
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (gate() != 0) return -1;
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (gate() != 0) return -1;
    return real(fd);
}
