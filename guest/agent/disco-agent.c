/*
 * disco-agent: runs commands for `disco exec` inside a Disco guest.
 *
 * Listens on AF_VSOCK port 1024 (any CID). Each connection is served by its
 * own process: one EXEC frame (argv, environment, working directory), then
 * STDIN frames and STDIN_EOF from the host; STDOUT and STDERR frames and a
 * final EXIT frame back. The protocol is described in docs/guest-agent.md.
 *
 * Built static for riscv64 (src/image/agent.ts). init respawns the agent, so
 * while vsock is not available yet (module not loaded, no device) it waits
 * and retries every second instead of exiting.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define AGENT_PORT 1024
#define PROTOCOL_VERSION 1

/* Frame types (docs/guest-agent.md). */
enum {
  FRAME_EXEC = 0x01,
  FRAME_STDIN = 0x02,
  FRAME_STDIN_EOF = 0x03,
  FRAME_STDOUT = 0x81,
  FRAME_STDERR = 0x82,
  FRAME_EXIT = 0x83,
  FRAME_ERROR = 0x84,
};

#define FRAME_HEADER 5
#define MAX_EXEC_PAYLOAD (256 * 1024)
#define MAX_DATA_PAYLOAD (64 * 1024)
#define DEFAULT_PATH "/sbin:/bin:/usr/sbin:/usr/bin"

static int write_full(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* 1: read all, 0: clean EOF before the first byte, -1: error or EOF inside. */
static int read_full(int fd, void *buf, size_t len) {
  uint8_t *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = read(fd, p + done, len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) return done == 0 ? 0 : -1;
    done += (size_t)n;
  }
  return 1;
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; p[2] = (v >> 16) & 0xff; p[3] = (v >> 24) & 0xff;
}

static int send_frame(int fd, int type, const void *data, uint32_t len) {
  uint8_t h[FRAME_HEADER];
  h[0] = (uint8_t)type;
  put_u32(h + 1, len);
  if (write_full(fd, h, sizeof h) < 0) return -1;
  return len > 0 ? write_full(fd, data, len) : 0;
}

static void send_error(int fd, const char *msg) {
  send_frame(fd, FRAME_ERROR, msg, (uint32_t)strlen(msg));
}

/* Reads one frame; payload is malloc'd (NULL when empty). 1 ok, 0 EOF, -1 error. */
static int read_frame(int fd, int *type, uint8_t **payload, uint32_t *len, uint32_t max) {
  uint8_t h[FRAME_HEADER];
  int r = read_full(fd, h, sizeof h);
  if (r <= 0) return r;
  *type = h[0];
  *len = get_u32(h + 1);
  *payload = NULL;
  if (*len > max) return -1;
  if (*len == 0) return 1;
  *payload = malloc(*len);
  if (!*payload) return -1;
  if (read_full(fd, *payload, *len) != 1) {
    free(*payload);
    *payload = NULL;
    return -1;
  }
  return 1;
}

struct exec_request {
  char **argv;
  char **envp;
  char *cwd;
};

/* Splits the EXEC payload: u32 version, u32 argc, u32 envc, then argc + envc + 1 NUL-terminated strings. */
static const char *parse_exec(uint8_t *p, uint32_t len, struct exec_request *req) {
  if (len < 12) return "EXEC frame too short";
  if (get_u32(p) != PROTOCOL_VERSION) return "unsupported protocol version";
  uint32_t argc = get_u32(p + 4), envc = get_u32(p + 8);
  if (argc == 0) return "empty argv";
  if (argc > 65536 || envc > 65536) return "too many strings";
  char **argv = calloc((size_t)argc + 1, sizeof *argv);
  char **envp = calloc((size_t)envc + 1, sizeof *envp);
  if (!argv || !envp) return "out of memory";
  uint32_t off = 12;
  for (uint32_t i = 0; i < argc + envc + 1; i++) {
    uint8_t *end = off < len ? memchr(p + off, 0, len - off) : NULL;
    if (!end) return "unterminated string in EXEC frame";
    char *s = (char *)p + off;
    if (i < argc) argv[i] = s;
    else if (i < argc + envc) {
      if (!strchr(s, '=')) return "environment entry without '='";
      envp[i - argc] = s;
    } else req->cwd = s;
    off = (uint32_t)(end - p) + 1;
  }
  if (off != len) return "trailing bytes in EXEC frame";
  req->argv = argv;
  req->envp = envp;
  return NULL;
}

static void child_exec(const struct exec_request *req) {
  clearenv();
  setenv("PATH", DEFAULT_PATH, 1);
  setenv("HOME", "/root", 1);
  for (char **e = req->envp; *e; e++) putenv(*e);
  if (req->cwd[0] && chdir(req->cwd) < 0) {
    dprintf(2, "disco-agent: cannot change directory to %s: %s\n", req->cwd, strerror(errno));
    _exit(127);
  }
  execvp(req->argv[0], req->argv);
  dprintf(2, "disco-agent: cannot run %s: %s\n", req->argv[0], strerror(errno));
  _exit(127);
}

static void serve(int conn) {
  int type;
  uint8_t *payload;
  uint32_t len;
  if (read_frame(conn, &type, &payload, &len, MAX_EXEC_PAYLOAD) != 1) return;
  if (type != FRAME_EXEC) {
    send_error(conn, "expected an EXEC frame");
    return;
  }
  struct exec_request req = {0};
  const char *bad = payload ? parse_exec(payload, len, &req) : "empty EXEC frame";
  if (bad) {
    send_error(conn, bad);
    return;
  }
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
    send_error(conn, "cannot create pipes");
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    send_error(conn, "cannot fork");
    return;
  }
  if (pid == 0) {
    setsid();
    signal(SIGPIPE, SIG_DFL);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    child_exec(&req);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  int to_child = in[1];
  fcntl(to_child, F_SETFL, O_NONBLOCK);
  int outs[2] = {out[0], err[0]};
  uint8_t *pending = NULL; /* stdin bytes the child has not taken yet */
  uint32_t pending_len = 0, pending_off = 0;
  int stdin_eof = 0, conn_open = 1;
  static uint8_t buf[MAX_DATA_PAYLOAD];

  while (outs[0] >= 0 || outs[1] >= 0) {
    struct pollfd fds[4];
    int n = 0, i_conn = -1, i_in = -1, i_out[2] = {-1, -1};
    if (conn_open && pending_len == 0) { i_conn = n; fds[n++] = (struct pollfd){conn, POLLIN, 0}; }
    if (to_child >= 0 && pending_len > 0) { i_in = n; fds[n++] = (struct pollfd){to_child, POLLOUT, 0}; }
    for (int k = 0; k < 2; k++)
      if (outs[k] >= 0) { i_out[k] = n; fds[n++] = (struct pollfd){outs[k], POLLIN, 0}; }
    if (poll(fds, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (i_conn >= 0 && fds[i_conn].revents) {
      int r = read_frame(conn, &type, &payload, &len, MAX_DATA_PAYLOAD);
      if (r <= 0) {
        /* The host went away: the command goes with it. */
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return;
      }
      if (type == FRAME_STDIN && !stdin_eof && to_child >= 0 && len > 0) {
        pending = payload;
        pending_len = len;
        pending_off = 0;
        payload = NULL;
      } else if (type == FRAME_STDIN_EOF) {
        stdin_eof = 1;
      } else if (type != FRAME_STDIN) {
        send_error(conn, "unexpected frame");
      }
      free(payload);
    }
    if (i_in >= 0 && fds[i_in].revents) {
      ssize_t w = write(to_child, pending + pending_off, pending_len - pending_off);
      if (w > 0) pending_off += (uint32_t)w;
      if (w < 0 && errno != EAGAIN && errno != EINTR) {
        /* The command closed its stdin: the rest is dropped. */
        close(to_child);
        to_child = -1;
      }
      if (to_child < 0 || pending_off == pending_len) {
        free(pending);
        pending = NULL;
        pending_len = pending_off = 0;
      }
    }
    if (stdin_eof && pending_len == 0 && to_child >= 0) {
      close(to_child);
      to_child = -1;
    }
    for (int k = 0; k < 2; k++) {
      if (i_out[k] < 0 || !fds[i_out[k]].revents) continue;
      ssize_t r = read(outs[k], buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        close(outs[k]);
        outs[k] = -1;
        continue;
      }
      if (send_frame(conn, k == 0 ? FRAME_STDOUT : FRAME_STDERR, buf, (uint32_t)r) < 0) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return;
      }
    }
  }
  if (to_child >= 0) close(to_child);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  uint8_t exit_frame[8] = {0};
  if (WIFSIGNALED(status)) {
    exit_frame[0] = 1;
    put_u32(exit_frame + 4, (uint32_t)WTERMSIG(status));
  } else {
    put_u32(exit_frame + 4, (uint32_t)WEXITSTATUS(status));
  }
  send_frame(conn, FRAME_EXIT, exit_frame, sizeof exit_frame);
  shutdown(conn, SHUT_WR);
  /* Wait for the host to close, so the EXIT frame is not cut off by a reset. */
  while (read(conn, buf, sizeof buf) > 0) {}
}

static int open_listener(void) {
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_vm addr;
  memset(&addr, 0, sizeof addr);
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = AGENT_PORT;
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 16) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/*
 * Whether the machine has a virtio vsock device (virtio device ID 19). Without
 * one, every failed socket(AF_VSOCK) asks the kernel to load a module, which
 * runs modprobe: retrying each second kept an idle guest busy.
 */
static int have_vsock_device(void) {
  DIR *d = opendir("/sys/bus/virtio/devices");
  if (!d) return 0;
  int found = 0;
  struct dirent *e;
  while (!found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[300], id[16] = {0};
    snprintf(path, sizeof path, "/sys/bus/virtio/devices/%s/device", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, id, sizeof id - 1);
    close(fd);
    if (n > 0 && strtol(id, NULL, 16) == 19) found = 1;
  }
  closedir(d);
  return found;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  /* Connection processes are reaped by the kernel. */
  signal(SIGCHLD, SIG_IGN);
  setenv("PATH", DEFAULT_PATH, 1);
  for (;;) {
    int lfd = open_listener();
    if (lfd < 0) {
      /* virtio-mmio devices do not come and go: without one, look again rarely. */
      sleep(have_vsock_device() ? 1 : 60);
      continue;
    }
    for (;;) {
      int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
      if (conn < 0) {
        if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
          if (errno != EINTR && errno != ECONNABORTED) sleep(1);
          continue;
        }
        break;
      }
      pid_t pid = fork();
      if (pid == 0) {
        close(lfd);
        signal(SIGCHLD, SIG_DFL);
        serve(conn);
        _exit(0);
      }
      close(conn);
      if (pid < 0) sleep(1);
    }
    close(lfd);
    sleep(1);
  }
}
