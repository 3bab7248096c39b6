/*
 * criu-prlimit-shim.c — an LD_PRELOAD-style shim for criu, built and used ONLY
 * on request (`scripts/install-criu.sh --with-prlimit-shim`, which writes the
 * wrapper PREFIX/bin/criu-prlimit-shim that starts criu through the loader's
 * `--preload` with this object).
 *
 * Why it exists: `criu dump` reads every resource limit of every dumped task
 * with prlimit64(pid, res, NULL, &old). For a process of ANOTHER user the
 * kernel demands CAP_SYS_RESOURCE even for that read-only query. On machines
 * whose root lacks CAP_SYS_RESOURCE (not in the capability bounding set:
 * containers, CI sandboxes) a root dump of a user's job therefore fails with
 *     Error (criu/cr-dump.c:...): Can't get rlimit 0: Operation not permitted
 * Real cluster nodes give root that capability and do NOT need this shim.
 *
 * What it does: it interposes prlimit64(), prlimit() and syscall() (the latter
 * only when called with SYS_prlimit64). ONLY a read-only query (new_limit ==
 * NULL) that the kernel refused with EPERM is answered, from /proc/PID/limits
 * (world-readable, same values as the kernel would have returned). Everything
 * else — any call that sets a limit, any other error, any other syscall — is
 * passed through unchanged, so the shim can never grant what the kernel denies.
 *
 * Build: gcc -O2 -fPIC -shared -o ckpt-prlimit-shim.so criu-prlimit-shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* The row names of /proc/PID/limits, indexed by RLIMIT_* (fs/proc/base.c). */
static const char *const limit_names[] = {
	[RLIMIT_CPU] = "Max cpu time",
	[RLIMIT_FSIZE] = "Max file size",
	[RLIMIT_DATA] = "Max data size",
	[RLIMIT_STACK] = "Max stack size",
	[RLIMIT_CORE] = "Max core file size",
	[RLIMIT_RSS] = "Max resident set",
	[RLIMIT_NPROC] = "Max processes",
	[RLIMIT_NOFILE] = "Max open files",
	[RLIMIT_MEMLOCK] = "Max locked memory",
	[RLIMIT_AS] = "Max address space",
	[RLIMIT_LOCKS] = "Max file locks",
	[RLIMIT_SIGPENDING] = "Max pending signals",
	[RLIMIT_MSGQUEUE] = "Max msgqueue size",
	[RLIMIT_NICE] = "Max nice priority",
	[RLIMIT_RTPRIO] = "Max realtime priority",
	[RLIMIT_RTTIME] = "Max realtime timeout",
};

static int parse_value(const char *s, rlim_t *out)
{
	char *end;
	unsigned long long v;

	if (strcmp(s, "unlimited") == 0) {
		*out = RLIM_INFINITY;
		return 0;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = (rlim_t)v;
	return 0;
}

/* Fill *lim with limit `resource` of `pid` from /proc/PID/limits; 0 or -1. */
static int limits_from_proc(pid_t pid, int resource, struct rlimit *lim)
{
	char path[64], line[256], soft[64], hard[64];
	const char *name;
	size_t nlen;
	FILE *f;
	int ret = -1;

	if (resource < 0 || (size_t)resource >= sizeof(limit_names) / sizeof(limit_names[0]))
		return -1;
	name = limit_names[resource];
	nlen = strlen(name);
	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* the name column is "%-25s": the name, then at least one space */
		if (strncmp(line, name, nlen) != 0 || line[nlen] != ' ')
			continue;
		if (sscanf(line + nlen, "%63s %63s", soft, hard) == 2 &&
		    parse_value(soft, &lim->rlim_cur) == 0 && parse_value(hard, &lim->rlim_max) == 0)
			ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/* After a failed read-only query: answer it from /proc if the failure was EPERM. */
static int fallback(pid_t pid, int resource, const struct rlimit *new_limit,
		    struct rlimit *old_limit, int saved_errno)
{
	struct rlimit lim;

	if (saved_errno == EPERM && new_limit == NULL && old_limit != NULL && pid > 0 &&
	    limits_from_proc(pid, resource, &lim) == 0) {
		*old_limit = lim;
		return 0;
	}
	errno = saved_errno;
	return -1;
}

static long raw_prlimit64(pid_t pid, int resource, const struct rlimit *new_limit,
			  struct rlimit *old_limit)
{
	/* struct rlimit is struct rlimit64 on 64-bit Linux */
	long (*real_syscall)(long, ...) = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");

	if (real_syscall)
		return real_syscall(SYS_prlimit64, (long)pid, (long)resource, new_limit, old_limit);
	errno = ENOSYS;
	return -1;
}

static int shim_prlimit(pid_t pid, int resource, const struct rlimit *new_limit,
			struct rlimit *old_limit)
{
	if (raw_prlimit64(pid, resource, new_limit, old_limit) == 0)
		return 0;
	return fallback(pid, resource, new_limit, old_limit, errno);
}

/* Same prototypes as glibc's <sys/resource.h> (struct rlimit64 == struct rlimit on x86_64). */
int prlimit64(pid_t pid, enum __rlimit_resource resource, const struct rlimit64 *new_limit,
	      struct rlimit64 *old_limit)
{
	return shim_prlimit(pid, (int)resource, (const struct rlimit *)new_limit,
			    (struct rlimit *)old_limit);
}

int prlimit(pid_t pid, enum __rlimit_resource resource, const struct rlimit *new_limit,
	    struct rlimit *old_limit)
{
	return shim_prlimit(pid, (int)resource, new_limit, old_limit);
}

/*
 * syscall(): x86_64 passes up to six integer arguments in registers, so
 * reading six from the va_list and passing them on is what glibc's own
 * syscall() does with them.
 */
long syscall(long number, ...)
{
	static long (*real_syscall)(long, ...);
	long a[6];
	va_list ap;
	long ret;

	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);

	if (!real_syscall)
		real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	if (!real_syscall) {
		errno = ENOSYS;
		return -1;
	}
	ret = real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (ret == -1 && number == SYS_prlimit64)
		return fallback((pid_t)a[0], (int)a[1], (const struct rlimit *)a[2],
				(struct rlimit *)a[3], errno);
	return ret;
}
