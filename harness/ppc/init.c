// SPDX-License-Identifier: GPL-2.0
/*
 * PID 1 of the emulated PowerPC board.  A 32-bit PowerPC board has no Node
 * and here no shell either, so this static program is the whole userland
 * besides physcap-client and physcap-selftest: it mounts /proc, /sys and
 * /dev, then runs the lines of /job in order and powers off.  A line is one of
 *
 *   insmod FILE [PARAMS...]       finit_module(2)
 *   mount DEV DIR FSTYPE          mkdir -p DIR; mount(2)
 *   umount DIR
 *   write FILE TEXT...            write(2) the words, space-separated (sysfs)
 *   cat FILE                      copy it to the console (/proc/iomem)
 *   run PROGRAM [ARGS...]         fork, exec, wait
 *   # comment
 *
 * Every step is framed on the console for the host:
 *   PHYSCAP-STEP <n> <line>
 *   ...the step's own output...
 *   PHYSCAP-STEP-END <n> <exit code, or -errno for a built-in>
 * and the board prints PHYSCAP-BOARD-DONE when /job ran to its end, then
 * restarts (QEMU -no-reboot exits).  A failed step does not stop the job:
 * the host decides what failure means.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 64

static void mkdirs(const char *path)
{
	char buf[256];
	char *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	mkdir(buf, 0755);
}

static int do_insmod(char **argv, int argc)
{
	char params[1024] = "";
	size_t at = 0;
	int fd, i, rc;

	for (i = 2; i < argc && at < sizeof(params); i++)
		at += snprintf(params + at, sizeof(params) - at, "%s%s", i > 2 ? " " : "", argv[i]);
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = syscall(SYS_finit_module, fd, params, 0) ? -errno : 0;
	close(fd);
	return rc;
}

static int do_write(char **argv, int argc)
{
	char text[1024] = "";
	size_t at = 0;
	int fd, i, rc = 0;

	for (i = 2; i < argc && at < sizeof(text); i++)
		at += snprintf(text + at, sizeof(text) - at, "%s%s", i > 2 ? " " : "", argv[i]);
	fd = open(argv[1], O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int do_cat(const char *file)
{
	char buf[4096];
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	fflush(stdout);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(STDOUT_FILENO, buf, n) != n)
			break;
	close(fd);
	return n < 0 ? -errno : 0;
}

static int do_run(char **argv)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (!pid) {
		char *envp[] = { "PATH=/", "HOME=/", NULL };

		execve(argv[1], argv + 1, envp);
		printf("board-init: exec %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static int step(char *line)
{
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	char *save, *tok;

	for (tok = strtok_r(line, " \t", &save); tok && argc < MAX_ARGS;
	     tok = strtok_r(NULL, " \t", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;
	if (!strcmp(argv[0], "insmod") && argc >= 2)
		return do_insmod(argv, argc);
	if (!strcmp(argv[0], "mount") && argc == 4) {
		mkdirs(argv[2]);
		return mount(argv[1], argv[2], argv[3], MS_NOATIME, NULL) ? -errno : 0;
	}
	if (!strcmp(argv[0], "umount") && argc == 2)
		return umount(argv[1]) ? -errno : 0;
	if (!strcmp(argv[0], "write") && argc >= 3)
		return do_write(argv, argc);
	if (!strcmp(argv[0], "cat") && argc == 2)
		return do_cat(argv[1]);
	if (!strcmp(argv[0], "run") && argc >= 2)
		return do_run(argv);
	printf("board-init: cannot do: %s\n", argv[0]);
	return -EINVAL;
}

int main(void)
{
	char line[4096];
	FILE *job;
	int n = 0;

	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	job = fopen("/job", "re");
	if (!job) {
		printf("board-init: no /job: %s\n", strerror(errno));
	} else {
		while (fgets(line, sizeof(line), job)) {
			char shown[sizeof(line)];
			int rc;

			line[strcspn(line, "\r\n")] = 0;
			if (!line[strspn(line, " \t")] || line[strspn(line, " \t")] == '#')
				continue;
			snprintf(shown, sizeof(shown), "%s", line);
			printf("PHYSCAP-STEP %d %s\n", ++n, shown);
			rc = step(line);
			fflush(stdout);
			printf("PHYSCAP-STEP-END %d %d\n", n, rc);
		}
		fclose(job);
		printf("PHYSCAP-BOARD-DONE\n");
	}
	sync();
	/*
	 * A restart, not a power-off: the e500 board restarts through its
	 * guts RSTCR, and QEMU runs with -no-reboot, so it exits.
	 */
	reboot(RB_AUTOBOOT);
	return 0;
}
