// SPDX-License-Identifier: BSD-3-Clause
// A plain POSIX sockets program, one family of calls per mode, for tests/posix: the same binary
// runs on kernel loopback and, preloaded with liblstack.so, on the fabric; the test compares what
// it prints. It knows nothing of the fabric (it is an "unmodified application").
//
//   posix_calls_actor server <family> <ip> <port>   prints "READY", serves one run of the family
//   posix_calls_actor client <family> <ip> <port>   runs the family against the server
//
// Every result line is deterministic ("step: rc=0", "step: errno=EAGAIN", "step: bytes=4096
// sum=..."); lines starting with '#' are informational and not compared.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string g_ip;
int g_port = 0;

void say(const char* format, ...) __attribute__((format(printf, 1, 2)));
void say(const char* format, ...) {
    va_list ap;
    va_start(ap, format);
    std::vprintf(format, ap);
    va_end(ap);
    std::printf("\n");
    std::fflush(stdout);
}

const char* err_name(int e) {
    const char* n = strerrorname_np(e);
    return n != nullptr ? n : "?";
}

// "step: rc=0" or "step: errno=NAME".
void result(const char* step, long rc) {
    if (rc < 0) {
        say("%s: errno=%s", step, err_name(errno));
    } else {
        say("%s: rc=%ld", step, rc);
    }
}

void result0(const char* step, long rc) { result(step, rc < 0 ? rc : 0); }

sockaddr_in addr_of(const std::string& ip, int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    return a;
}

int tcp_listener(int port, int backlog = 16) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = addr_of(g_ip, port);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, backlog) != 0) {
        say("# listener on %d failed: %s", port, std::strerror(errno));
        std::exit(1);
    }
    return fd;
}

int tcp_connect(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = addr_of(g_ip, port);
    for (int i = 0; i < 200; ++i) {
        if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            return fd;
        }
        if (errno != ECONNREFUSED) {
            say("# connect failed: %s", std::strerror(errno));
            std::exit(1);
        }
        usleep(10000);
    }
    say("# connect: refused");
    std::exit(1);
}

int accept_one(int lfd) {
    for (;;) {
        const int c = accept(lfd, nullptr, nullptr);
        if (c >= 0 || errno != EINTR) {
            return c;
        }
    }
}

std::uint64_t sum_of(const char* p, std::size_t n) {
    std::uint64_t s = 1469598103934665603ull;
    for (std::size_t i = 0; i < n; ++i) {
        s = (s ^ static_cast<unsigned char>(p[i])) * 1099511628211ull;
    }
    return s;
}

std::vector<char> pattern(std::size_t n, unsigned seed) {
    std::vector<char> v(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& c : v) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>(x >> 24);
    }
    return v;
}

bool read_exact(int fd, char* p, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = read(fd, p + got, n - got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        got += static_cast<std::size_t>(r);
    }
    return true;
}

bool write_all(int fd, const char* p, std::size_t n) {
    std::size_t put = 0;
    while (put < n) {
        const ssize_t w = write(fd, p + put, n - put);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        put += static_cast<std::size_t>(w);
    }
    return true;
}

void set_nonblock(int fd, bool on) {
    const int fl = fcntl(fd, F_GETFL);
    (void)fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

// Polls fd until one of `events`, at most ms.
short wait_fd(int fd, short events, int ms) {
    pollfd p{fd, events, 0};
    const int rc = poll(&p, 1, ms);
    return rc > 0 ? p.revents : 0;
}

void echo_loop(int c) {
    std::vector<char> buf(65536);
    for (;;) {
        const ssize_t n = read(c, buf.data(), buf.size());
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            break;
        }
        if (!write_all(c, buf.data(), static_cast<std::size_t>(n))) {
            break;
        }
    }
}

// --- stream: blocking TCP calls ---------------------------------------------------------------------

void server_stream() {
    const int lfd = tcp_listener(g_port);
    say("READY");
    // 1: echo
    int c = accept_one(lfd);
    echo_loop(c);
    close(c);
    // 2: the server sends 1 MiB then shuts down its write side; expects the client's 4 bytes after.
    c = accept_one(lfd);
    const auto big = pattern(1 << 20, 7);
    result0("server big write", write_all(c, big.data(), big.size()) ? 0 : -1);
    result("server shutdown wr", shutdown(c, SHUT_WR));
    char tail[4];
    result0("server read after shutdown", read_exact(c, tail, 4) ? 0 : -1);
    char extra;
    result("server eof", read(c, &extra, 1));
    close(c);
    // 3: peer closes at once (client sees EOF, then EPIPE)
    c = accept_one(lfd);
    close(c);
    close(lfd);
    say("server done");
}

void client_stream() {
    int fd = tcp_connect(g_port);
    sockaddr_in local{};
    sockaddr_in peer{};
    socklen_t len = sizeof local;
    result("getsockname", getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len));
    say("local family=%d port_nonzero=%d", local.sin_family, local.sin_port != 0 ? 1 : 0);
    len = sizeof peer;
    result("getpeername", getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len));
    say("peer port=%d same_ip=%d", ntohs(peer.sin_port), peer.sin_addr.s_addr == addr_of(g_ip, 0).sin_addr.s_addr);
    int type = 0;
    len = sizeof type;
    result("SO_TYPE", getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len));
    say("type=%d", type);
    int err = -1;
    len = sizeof err;
    result("SO_ERROR", getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len));
    say("so_error=%d", err);
    const int one = 1;
    result("TCP_NODELAY", setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    int nd = 0;
    len = sizeof nd;
    result("get TCP_NODELAY", getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nd, &len));
    say("nodelay=%d", nd != 0);

    // write/read
    result("write", write(fd, "hello", 5));
    char buf[256] = {};
    result0("read back", read_exact(fd, buf, 5) ? 0 : -1);
    say("got=%.5s", buf);
    // send/recv with MSG_PEEK and MSG_WAITALL
    result("send", send(fd, "abcdefgh", 8, 0));
    std::memset(buf, 0, sizeof buf);
    while (wait_fd(fd, POLLIN, 2000) == 0) {
    }
    usleep(20000); // let the whole echo arrive
    int avail = 0;
    result("FIONREAD", ioctl(fd, FIONREAD, &avail));
    say("fionread=%d", avail);
    result("recv PEEK", recv(fd, buf, 4, MSG_PEEK));
    say("peek=%.4s", buf);
    result("recv WAITALL", recv(fd, buf, 8, MSG_WAITALL));
    say("waitall=%.8s", buf);
    // writev/readv
    char a[] = "one-";
    char b[] = "two-";
    char c3[] = "three";
    iovec out[3] = {{a, 4}, {b, 4}, {c3, 5}};
    result("writev", writev(fd, out, 3));
    char r1[6] = {};
    char r2[7] = {};
    iovec in[2] = {{r1, 6}, {r2, 7}};
    std::size_t got = 0;
    while (got < 13) {
        iovec rest[2];
        int n = 0;
        std::size_t skip = got;
        for (auto& v : in) {
            if (skip >= v.iov_len) {
                skip -= v.iov_len;
                continue;
            }
            rest[n++] = iovec{static_cast<char*>(v.iov_base) + skip, v.iov_len - skip};
            skip = 0;
        }
        const ssize_t r = readv(fd, rest, n);
        if (r <= 0) {
            break;
        }
        got += static_cast<std::size_t>(r);
    }
    say("readv=%zu %.6s|%.7s", got, r1, r2);
    // sendmsg/recvmsg
    char m[] = "msg-data";
    iovec mv{m, 8};
    msghdr mh{};
    mh.msg_iov = &mv;
    mh.msg_iovlen = 1;
    result("sendmsg", sendmsg(fd, &mh, 0));
    char rm[8] = {};
    iovec rv{rm, 8};
    msghdr rh{};
    rh.msg_iov = &rv;
    rh.msg_iovlen = 1;
    result("recvmsg", recvmsg(fd, &rh, MSG_WAITALL));
    say("recvmsg=%.8s flags=%d", rm, rh.msg_flags);
    // 256 KiB round trip, checked
    const auto data = pattern(256 * 1024, 3);
    std::thread writer([&] { (void)write_all(fd, data.data(), data.size()); });
    std::vector<char> back(data.size());
    const bool ok = read_exact(fd, back.data(), back.size());
    writer.join();
    say("echo 256KiB ok=%d same=%d", ok, ok && back == data);
    result("shutdown wr", shutdown(fd, SHUT_WR));
    result("eof", read(fd, buf, sizeof buf));
    result("close", close(fd));
    result("close again", close(fd));

    // 2: 1 MiB from the server, then its FIN, while our write side stays open
    fd = tcp_connect(g_port);
    std::vector<char> bigbuf(1 << 20);
    const bool big_ok = read_exact(fd, bigbuf.data(), bigbuf.size());
    say("big ok=%d sum_ok=%d", big_ok, big_ok && sum_of(bigbuf.data(), bigbuf.size()) == [] {
        auto p = pattern(1 << 20, 7);
        return sum_of(p.data(), p.size());
    }());
    result("read at server eof", read(fd, buf, sizeof buf));
    result("write after peer shut wr", write(fd, "tail", 4));
    close(fd);

    // 3: the server closes at once
    fd = tcp_connect(g_port);
    result("read closed", read(fd, buf, sizeof buf));
    usleep(50000);
    (void)send(fd, "x", 1, MSG_NOSIGNAL); // may succeed: the RST comes back later
    usleep(100000);
    const ssize_t s2 = send(fd, "x", 1, MSG_NOSIGNAL);
    say("send after reset: %s", s2 < 0 && (errno == EPIPE || errno == ECONNRESET) ? "broken" : "accepted");
    close(fd);
    say("client done");
}

// --- nonblock: non-blocking connect, accept, recv ----------------------------------------------------

void server_nonblock() {
    const int lfd = tcp_listener(g_port);
    say("READY");
    set_nonblock(lfd, true);
    result("accept empty", accept(lfd, nullptr, nullptr));
    result("accept4 empty", accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    while ((wait_fd(lfd, POLLIN, 5000) & POLLIN) == 0) {
    }
    const int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    result0("accept4", c);
    say("accepted nonblock=%d cloexec=%d", (fcntl(c, F_GETFL) & O_NONBLOCK) != 0, (fcntl(c, F_GETFD) & FD_CLOEXEC) != 0);
    char buf[64];
    result("recv empty", recv(c, buf, sizeof buf, 0));
    while ((wait_fd(c, POLLIN, 5000) & POLLIN) == 0) {
    }
    result("recv", recv(c, buf, sizeof buf, 0));
    result("send", send(c, "pong", 4, 0));
    while ((wait_fd(c, POLLIN, 5000) & POLLIN) == 0) {
    }
    result("recv eof", recv(c, buf, sizeof buf, 0));
    close(c);
    close(lfd);
    say("server done");
}

void client_nonblock() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    say("socket nonblock=%d", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    sockaddr_in a = addr_of(g_ip, g_port);
    usleep(100000); // the server's empty accepts first
    result("connect", connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a));
    const short ev = wait_fd(fd, POLLOUT, 5000);
    say("poll out=%d err=%d", (ev & POLLOUT) != 0, (ev & POLLERR) != 0);
    int err = -1;
    socklen_t len = sizeof err;
    result("SO_ERROR", getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len));
    say("so_error=%d", err);
    result("connect again", connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a));
    char buf[64];
    result("recv empty", recv(fd, buf, sizeof buf, 0));
    result("recv DONTWAIT", recv(fd, buf, sizeof buf, MSG_DONTWAIT));
    usleep(100000);
    result("send", send(fd, "ping", 4, 0));
    while ((wait_fd(fd, POLLIN, 5000) & POLLIN) == 0) {
    }
    result("recv", recv(fd, buf, sizeof buf, 0));
    // FIONBIO off, then a blocking recv with SO_RCVTIMEO
    int off = 0;
    result("FIONBIO off", ioctl(fd, FIONBIO, &off));
    say("nonblock=%d", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    timeval tv{0, 200000};
    result("SO_RCVTIMEO", setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    timeval back{};
    len = sizeof back;
    result("get SO_RCVTIMEO", getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &back, &len));
    say("rcvtimeo=%ld.%06ld", static_cast<long>(back.tv_sec), static_cast<long>(back.tv_usec));
    const auto t0 = Clock::now();
    result("recv timeout", recv(fd, buf, sizeof buf, 0));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    say("waited_about_200ms=%d", ms >= 150 && ms < 1500);
    close(fd);
    // A port nobody listens on.
    const int r = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in none = addr_of(g_ip, g_port + 7);
    timeval stv{3, 0};
    (void)setsockopt(r, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof stv);
    result("connect closed port", connect(r, reinterpret_cast<sockaddr*>(&none), sizeof none));
    close(r);
    say("client done");
}

// --- epoll --------------------------------------------------------------------------------------------

void server_epoll() {
    const int lfd = tcp_listener(g_port);
    say("READY");
    // One connection: the client drives; we send on command bytes. Then the client's second
    // (epoll-before-connect) connection, closed at once.
    const int c = accept_one(lfd);
    close(accept_one(lfd));
    char cmd = 0;
    while (read(c, &cmd, 1) == 1) {
        if (cmd == 'd') { // send 10 bytes
            (void)write(c, "0123456789", 10);
        } else if (cmd == 'w') { // shut down our write side
            (void)shutdown(c, SHUT_WR);
        }
    }
    close(c);
    close(lfd);
    say("server done");
}

int epoll_count(int ep, int ms, epoll_event* out = nullptr, int max = 8) {
    epoll_event local[8];
    const int n = epoll_wait(ep, out != nullptr ? out : local, max, ms);
    return n;
}

void client_epoll() {
    const int fd = tcp_connect(g_port); // retried until the server listens (its listener goes on the fabric at first use)
    {
        // Registered while not yet placed, then connected: the registration follows the socket.
        const int early = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        const int eps = epoll_create1(0);
        epoll_event e{};
        e.events = EPOLLOUT;
        e.data.u64 = 0x7777;
        result("early ctl add", epoll_ctl(eps, EPOLL_CTL_ADD, early, &e));
        sockaddr_in a = addr_of(g_ip, g_port);
        result("early connect", connect(early, reinterpret_cast<sockaddr*>(&a), sizeof a));
        epoll_event got{};
        const int n = epoll_wait(eps, &got, 1, 3000);
        say("early: n=%d data=%llx out=%d err=%d", n, n > 0 ? static_cast<unsigned long long>(got.data.u64) : 0ull,
            n > 0 && (got.events & EPOLLOUT) != 0, n > 0 && (got.events & EPOLLERR) != 0);
        close(early);
        close(eps);
    }
    set_nonblock(fd, true);
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    const int ep2 = epoll_create(4);
    int pipefd[2];
    (void)pipe(pipefd);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0x1111;
    result("ctl add LT", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
    result("ctl add again", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
    result("ctl mod unknown", epoll_ctl(ep, EPOLL_CTL_MOD, pipefd[1], &ev));
    ev.data.u64 = 0x2222;
    result("ctl add pipe", epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev));
    const auto t0 = Clock::now();
    result("wait idle", epoll_count(ep, 100));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    say("idle_waited=%d", ms >= 80);
    // LT: data stays reported until read.
    (void)write(fd, "d", 1);
    epoll_event out[8];
    int n = epoll_count(ep, 3000, out);
    say("LT first: n=%d data=%llx in=%d", n, n > 0 ? static_cast<unsigned long long>(out[0].data.u64) : 0ull,
        n > 0 && (out[0].events & EPOLLIN) != 0);
    usleep(20000);
    n = epoll_count(ep, 0, out);
    say("LT again: n=%d", n);
    char buf[64];
    result("read", read(fd, buf, sizeof buf));
    result("LT drained", epoll_count(ep, 0));
    // Mixed: a kernel pipe in the same set.
    (void)write(pipefd[1], "p", 1);
    n = epoll_count(ep, 1000, out);
    say("pipe: n=%d data=%llx", n, n > 0 ? static_cast<unsigned long long>(out[0].data.u64) : 0ull);
    (void)read(pipefd[0], buf, 1);
    // Both at once.
    (void)write(pipefd[1], "p", 1);
    (void)write(fd, "d", 1);
    usleep(50000);
    n = epoll_count(ep, 1000, out);
    unsigned long long mask = 0;
    for (int i = 0; i < n; ++i) {
        mask |= out[i].data.u64;
    }
    say("both: n=%d mask=%llx", n, mask);
    (void)read(pipefd[0], buf, 1);
    (void)read(fd, buf, sizeof buf);
    // ET: reported once per arrival.
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 0x3333;
    result("ctl mod ET", epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev));
    (void)write(fd, "d", 1);
    n = epoll_count(ep, 3000, out);
    say("ET first: n=%d data=%llx", n, n > 0 ? static_cast<unsigned long long>(out[0].data.u64) : 0ull);
    usleep(20000);
    result("ET again (not read)", epoll_count(ep, 0));
    (void)write(fd, "d", 1);
    n = epoll_count(ep, 3000, out);
    say("ET new data: n=%d", n);
    usleep(20000);
    (void)read(fd, buf, sizeof buf);
    (void)read(fd, buf, sizeof buf);
    // ONESHOT: once, then silent until MOD.
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = 0x4444;
    result("ctl mod ONESHOT", epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev));
    (void)write(fd, "d", 1);
    n = epoll_count(ep, 3000, out);
    say("ONESHOT first: n=%d", n);
    usleep(20000);
    result("ONESHOT again", epoll_count(ep, 0));
    result("ctl rearm", epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev));
    n = epoll_count(ep, 1000, out);
    say("ONESHOT rearmed: n=%d", n);
    (void)read(fd, buf, sizeof buf);
    // The same socket in a second set, EPOLLOUT there.
    epoll_event ev2{};
    ev2.events = EPOLLOUT;
    ev2.data.u64 = 0x5555;
    result("ctl add set2", epoll_ctl(ep2, EPOLL_CTL_ADD, fd, &ev2));
    n = epoll_count(ep2, 1000, out);
    say("set2 out: n=%d out=%d", n, n > 0 && (out[0].events & EPOLLOUT) != 0);
    // EPOLLRDHUP when the peer shuts down its side.
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = 0x6666;
    result("ctl mod RDHUP", epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev));
    (void)write(fd, "w", 1);
    n = epoll_count(ep, 3000, out);
    say("rdhup: n=%d in=%d rdhup=%d hup=%d", n, n > 0 && (out[0].events & EPOLLIN) != 0,
        n > 0 && (out[0].events & EPOLLRDHUP) != 0, n > 0 && (out[0].events & EPOLLHUP) != 0);
    result("read eof", read(fd, buf, sizeof buf));
    // Nested: the epoll fd in poll().
    short pev = wait_fd(ep, POLLIN, 1000);
    say("epoll fd in poll: in=%d", (pev & POLLIN) != 0);
    result("ctl del", epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr));
    result("ctl del again", epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr));
    result("ctl del pipe", epoll_ctl(ep, EPOLL_CTL_DEL, pipefd[0], nullptr));
    result("wait empty", epoll_count(ep, 50));
    // EPOLLEXCLUSIVE is accepted on ADD, refused on MOD.
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    result("ctl add EXCLUSIVE", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
    result("ctl mod EXCLUSIVE", epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev));
    // Closing the socket removes it from the sets.
    close(fd);
    result("after close", epoll_count(ep2, 50));
    close(ep);
    close(ep2);
    close(pipefd[0]);
    close(pipefd[1]);
    say("client done");
}

// --- poll and select ---------------------------------------------------------------------------------------

void server_poll() { server_epoll(); }

void client_poll() {
    const int fd = tcp_connect(g_port);
    close(tcp_connect(g_port)); // the server expects a second connection (the epoll family's early one)
    int pipefd[2];
    (void)pipe(pipefd);
    pollfd p[3] = {{fd, POLLIN, 0}, {pipefd[0], POLLIN, 0}, {-1, POLLIN, 0}};
    const auto t0 = Clock::now();
    result("poll idle", poll(p, 3, 100));
    say("idle_waited=%d", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count() >= 80);
    (void)write(fd, "d", 1);
    int n = poll(p, 3, 3000);
    say("poll sock: n=%d revents=%x,%x,%x", n, p[0].revents, p[1].revents, p[2].revents);
    char buf[64];
    (void)read(fd, buf, sizeof buf);
    (void)write(pipefd[1], "p", 1);
    n = poll(p, 3, 3000);
    say("poll pipe: n=%d revents=%x,%x", n, p[0].revents, p[1].revents);
    (void)read(pipefd[0], buf, 1);
    pollfd w{fd, POLLOUT, 0};
    n = poll(&w, 1, 1000);
    say("poll out: n=%d revents=%x", n, w.revents);
    // ppoll with a signal mask
    sigset_t mask;
    sigemptyset(&mask);
    timespec ts{0, 50 * 1000 * 1000};
    result("ppoll idle", ppoll(p, 2, &ts, &mask));
    (void)write(fd, "d", 1);
    ts = timespec{3, 0};
    n = ppoll(p, 2, &ts, &mask);
    say("ppoll: n=%d revents=%x", n, p[0].revents);
    usleep(20000);
    // select: the socket is still readable (not read yet); writable too.
    fd_set rs;
    fd_set ws;
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_SET(fd, &rs);
    FD_SET(pipefd[0], &rs);
    FD_SET(fd, &ws);
    timeval tv{1, 0};
    n = select(std::max(fd, pipefd[0]) + 1, &rs, &ws, nullptr, &tv);
    say("select: n=%d r_sock=%d r_pipe=%d w_sock=%d", n, FD_ISSET(fd, &rs) != 0, FD_ISSET(pipefd[0], &rs) != 0,
        FD_ISSET(fd, &ws) != 0);
    (void)read(fd, buf, sizeof buf);
    FD_ZERO(&rs);
    FD_SET(fd, &rs);
    tv = timeval{0, 100000};
    n = select(fd + 1, &rs, nullptr, nullptr, &tv);
    say("select idle: n=%d r=%d tv_left_le=%d", n, FD_ISSET(fd, &rs) != 0, tv.tv_sec == 0 && tv.tv_usec <= 100000);
    FD_ZERO(&rs);
    FD_SET(fd, &rs);
    timespec pts{1, 0};
    (void)write(fd, "d", 1);
    n = pselect(fd + 1, &rs, nullptr, nullptr, &pts, &mask);
    say("pselect: n=%d r=%d", n, FD_ISSET(fd, &rs) != 0);
    (void)read(fd, buf, sizeof buf);
    (void)write(fd, "w", 1);
    pollfd h{fd, POLLIN | POLLRDHUP, 0};
    n = poll(&h, 1, 3000);
    say("poll rdhup: n=%d in=%d rdhup=%d", n, (h.revents & POLLIN) != 0, (h.revents & POLLRDHUP) != 0);
    close(fd);
    close(pipefd[0]);
    close(pipefd[1]);
    say("client done");
}

// --- udp -----------------------------------------------------------------------------------------------------

void server_udp() {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a = addr_of(g_ip, g_port);
    result("bind", bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a));
    say("READY");
    char buf[2048];
    for (;;) {
        sockaddr_in from{};
        socklen_t len = sizeof from;
        const ssize_t n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 0 || (n == 4 && std::memcmp(buf, "stop", 4) == 0)) {
            break;
        }
        // Echo each datagram twice as two datagrams: boundaries must survive.
        (void)sendto(fd, buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
        (void)sendto(fd, buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
    close(fd);
    say("server done");
}

void client_udp() {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in srv = addr_of(g_ip, g_port);
    char buf[4096];
    result("sendto", sendto(fd, "alpha", 5, 0, reinterpret_cast<sockaddr*>(&srv), sizeof srv));
    sockaddr_in from{};
    socklen_t len = sizeof from;
    result("recvfrom", recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len));
    say("from port=%d", ntohs(from.sin_port));
    result("recv second", recv(fd, buf, sizeof buf, 0));
    timeval tv{0, 100000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    result("recv none", recv(fd, buf, sizeof buf, 0));
    // connect + send/recv
    result("connect", connect(fd, reinterpret_cast<sockaddr*>(&srv), sizeof srv));
    sockaddr_in peer{};
    len = sizeof peer;
    result("getpeername", getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len));
    say("peer port=%d", ntohs(peer.sin_port));
    result("send", send(fd, "bravo-charlie", 13, 0));
    usleep(100000);
    int avail = 0;
    result("FIONREAD", ioctl(fd, FIONREAD, &avail));
    say("fionread=%d", avail);
    result("recv PEEK", recv(fd, buf, 5, MSG_PEEK));
    say("peek=%.5s", buf);
    result("recv trunc", recv(fd, buf, 5, 0));
    result("recv full", recv(fd, buf, sizeof buf, 0));
    say("data=%.13s", buf);
    // sendmsg/recvmsg with a name
    char part1[] = "delta-";
    char part2[] = "echo";
    iovec iov[2] = {{part1, 6}, {part2, 4}};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    result("sendmsg", sendmsg(fd, &mh, 0));
    char r1[4] = {};
    char r2[16] = {};
    iovec riov[2] = {{r1, 4}, {r2, 16}};
    sockaddr_in name{};
    msghdr rh{};
    rh.msg_name = &name;
    rh.msg_namelen = sizeof name;
    rh.msg_iov = riov;
    rh.msg_iovlen = 2;
    result("recvmsg", recvmsg(fd, &rh, 0));
    say("recvmsg=%.4s|%.6s name_port=%d", r1, r2, ntohs(name.sin_port));
    result("recv dup", recv(fd, buf, sizeof buf, 0));
    // A big datagram.
    const auto big = pattern(1400, 5);
    result("send big", send(fd, big.data(), big.size(), 0));
    const ssize_t n1 = recv(fd, buf, sizeof buf, 0);
    say("big back=%zd same=%d", n1, n1 == 1400 && std::memcmp(buf, big.data(), 1400) == 0);
    (void)recv(fd, buf, sizeof buf, 0);
    // poll on UDP
    (void)send(fd, "x", 1, 0);
    pollfd p{fd, POLLIN, 0};
    const int pn = poll(&p, 1, 3000);
    say("poll: n=%d in=%d", pn, (p.revents & POLLIN) != 0);
    (void)recv(fd, buf, sizeof buf, 0);
    (void)recv(fd, buf, sizeof buf, 0);
    (void)send(fd, "y", 1, 0);
    (void)recv(fd, buf, sizeof buf, 0);
    (void)recv(fd, buf, sizeof buf, 0);
    // sendmmsg / recvmmsg: two datagrams out, four back (each echoed twice).
    char d1[] = "first";
    char d2[] = "second!";
    iovec out_iov[2] = {{d1, 5}, {d2, 7}};
    mmsghdr out_msgs[2] = {};
    out_msgs[0].msg_hdr.msg_iov = &out_iov[0];
    out_msgs[0].msg_hdr.msg_iovlen = 1;
    out_msgs[1].msg_hdr.msg_iov = &out_iov[1];
    out_msgs[1].msg_hdr.msg_iovlen = 1;
    result("sendmmsg", sendmmsg(fd, out_msgs, 2, 0));
    say("sendmmsg lens=%u,%u", out_msgs[0].msg_len, out_msgs[1].msg_len);
    usleep(100000);
    char in_buf[4][16] = {};
    iovec in_iov[4];
    mmsghdr in_msgs[4] = {};
    for (int i = 0; i < 4; ++i) {
        in_iov[i] = iovec{in_buf[i], sizeof in_buf[i]};
        in_msgs[i].msg_hdr.msg_iov = &in_iov[i];
        in_msgs[i].msg_hdr.msg_iovlen = 1;
    }
    result("recvmmsg", recvmmsg(fd, in_msgs, 4, MSG_WAITFORONE, nullptr));
    say("recvmmsg lens=%u,%u,%u,%u", in_msgs[0].msg_len, in_msgs[1].msg_len, in_msgs[2].msg_len, in_msgs[3].msg_len);
    (void)send(fd, "stop", 4, 0);
    // close_range on two fabric sockets moved to high numbers.
    const int a = socket(AF_INET, SOCK_DGRAM, 0);
    const int b = socket(AF_INET, SOCK_DGRAM, 0);
    (void)sendto(a, "z", 1, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&srv), sizeof srv);
    (void)sendto(b, "z", 1, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&srv), sizeof srv);
    (void)dup2(a, 300);
    (void)dup2(b, 301);
    close(a);
    close(b);
    result("close_range", close_range(300, 301, 0));
    result("send after close_range", sendto(300, "z", 1, 0, reinterpret_cast<sockaddr*>(&srv), sizeof srv));
    close(fd);
    say("client done");
}

// --- signals and blocking ------------------------------------------------------------------------------------

std::atomic<int> g_signals{0};
void on_signal(int) { g_signals.fetch_add(1); }

void install(int sig, bool restart) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(sig, &sa, nullptr);
}

// Sends sig to this thread after ms.
std::thread signal_later(pthread_t target, int sig, int ms) {
    return std::thread([target, sig, ms] {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        pthread_kill(target, sig);
    });
}

void server_signals() {
    const int lfd = tcp_listener(g_port);
    say("READY");
    // Blocking accept interrupted by a signal without SA_RESTART.
    install(SIGUSR1, false);
    std::thread t = signal_later(pthread_self(), SIGUSR1, 200);
    result("accept EINTR", accept(lfd, nullptr, nullptr));
    t.join();
    const int c = accept_one(lfd);
    char buf[64];
    // recv interrupted (no SA_RESTART): EINTR.
    t = signal_later(pthread_self(), SIGUSR1, 200);
    result("recv EINTR", recv(c, buf, sizeof buf, 0));
    t.join();
    // recv with SA_RESTART: restarted, returns the data the client sends 600 ms later.
    install(SIGUSR2, true);
    t = signal_later(pthread_self(), SIGUSR2, 200);
    result("recv restarted", recv(c, buf, sizeof buf, 0));
    t.join();
    // With SO_RCVTIMEO, EINTR even with SA_RESTART (signal(7)).
    timeval tv{5, 0};
    (void)setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    t = signal_later(pthread_self(), SIGUSR2, 200);
    result("recv timeo EINTR", recv(c, buf, sizeof buf, 0));
    t.join();
    // epoll_wait: EINTR even with SA_RESTART.
    const int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    (void)epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
    t = signal_later(pthread_self(), SIGUSR2, 200);
    result("epoll_wait EINTR", epoll_wait(ep, &ev, 1, 5000));
    t.join();
    // poll: EINTR too.
    pollfd p{c, POLLIN, 0};
    t = signal_later(pthread_self(), SIGUSR2, 200);
    result("poll EINTR", poll(&p, 1, 5000));
    t.join();
    say("signals=%d", g_signals.load());
    (void)write(c, "k", 1);
    result("recv final", recv(c, buf, sizeof buf, 0));
    close(ep);
    close(c);
    close(lfd);
    say("server done");
}

void client_signals() {
    usleep(400000); // after the server's interrupted accept
    const int fd = tcp_connect(g_port);
    usleep(300000); // past the interrupted recv
    usleep(500000);
    (void)write(fd, "late", 4); // answers the restarted recv
    char k;
    (void)read(fd, &k, 1); // the server is done with its interrupted waits
    result("write final", write(fd, "fin", 3));
    usleep(100000);
    close(fd);
    say("client done");
}

// --- dup and fork ------------------------------------------------------------------------------------------

void server_fork() {
    // The listener is made before fork(); two workers accept on it. With liblstack.so each
    // worker attaches on its own and the fabric shares the listener between them.
    const int lfd = tcp_listener(g_port, 64);
    say("READY");
    pid_t kids[2];
    for (pid_t& kid : kids) {
        kid = fork();
        if (kid == 0) {
            (void)prctl(PR_SET_PDEATHSIG, SIGKILL); // a test that kills the parent kills us too
            int served = 0;
            for (;;) {
                const int c = accept_one(lfd);
                if (c < 0) {
                    break;
                }
                char cmd[8] = {};
                if (read(c, cmd, 4) != 4) {
                    close(c);
                    continue;
                }
                if (std::strncmp(cmd, "quit", 4) == 0) {
                    const std::string bye = "bye=" + std::to_string(getpid()) + "\n";
                    (void)write(c, bye.data(), bye.size());
                    close(c);
                    break;
                }
                const std::string reply = "pid=" + std::to_string(getpid()) + "\n";
                (void)write(c, reply.data(), reply.size());
                close(c);
                ++served;
            }
            std::printf("# worker %d served %d\n", getpid(), served);
            std::fflush(stdout);
            close(lfd);
            std::exit(0);
        }
    }
    close(lfd); // the parent never touches the fabric
    int ok = 0;
    for (pid_t kid : kids) {
        int st = 0;
        if (waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            ++ok;
        }
    }
    say("workers exited ok=%d", ok);
    say("server done");
}

void client_fork() {
    // dup: the duplicate works, and survives closing the original.
    int fd = tcp_connect(g_port);
    const int d = dup(fd);
    result0("dup", d);
    result("write on dup", write(d, "ping", 4));
    result("close original", close(fd));
    char buf[64] = {};
    const ssize_t n = read(d, buf, sizeof buf);
    say("reply on dup: %s", n > 4 && std::strncmp(buf, "pid=", 4) == 0 ? "ok" : "bad");
    const int d2 = dup2(d, 100);
    say("dup2 -> %d", d2);
    result("close dup", close(d));
    result("read dup2 eof", read(100, buf, sizeof buf));
    close(100);
    // Many connections: both workers answer (the listener is shared).
    std::vector<std::string> pids;
    for (int i = 0; i < 40; ++i) {
        fd = tcp_connect(g_port);
        (void)write(fd, "ping", 4);
        std::memset(buf, 0, sizeof buf);
        std::size_t got = 0;
        while (got < sizeof buf - 1) {
            const ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
            if (r <= 0) {
                break;
            }
            got += static_cast<std::size_t>(r);
        }
        close(fd);
        if (std::strncmp(buf, "pid=", 4) == 0) {
            const std::string p(buf);
            bool seen = false;
            for (const auto& q : pids) {
                seen = seen || q == p;
            }
            if (!seen) {
                pids.push_back(p);
            }
        }
    }
    std::printf("# answered by %zu worker(s)\n", pids.size());
    // Stop both workers. A connection may reach a worker that is already on its way out (with
    // separate listeners per process it is then reset): ask until two different workers said bye.
    std::vector<std::string> byes;
    for (int attempt = 0; attempt < 50 && byes.size() < 2; ++attempt) {
        fd = tcp_connect(g_port);
        (void)write(fd, "quit", 4);
        std::memset(buf, 0, sizeof buf);
        const ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r > 4 && std::strncmp(buf, "bye=", 4) == 0) {
            const std::string b(buf);
            bool seen = false;
            for (const auto& q : byes) {
                seen = seen || q == b;
            }
            if (!seen) {
                byes.push_back(b);
            }
        } else {
            usleep(20000);
        }
    }
    say("workers stopped=%zu", byes.size());
    say("client done");
}

// --- threads: several threads, one socket each, plus one socket shared by two threads -------------

void server_threads() {
    const int lfd = tcp_listener(g_port, 64);
    say("READY");
    std::vector<std::thread> workers;
    for (int i = 0; i < 5; ++i) {
        const int c = accept_one(lfd);
        workers.emplace_back([c] {
            echo_loop(c);
            close(c);
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    close(lfd);
    say("server done");
}

void client_threads() {
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([t, &ok] {
            const int fd = tcp_connect(g_port);
            bool good = true;
            for (int round = 0; round < 200 && good; ++round) {
                const auto msg = pattern(static_cast<std::size_t>(64 + round * 7), static_cast<unsigned>(t * 1000 + round));
                std::vector<char> back(msg.size());
                good = write_all(fd, msg.data(), msg.size()) && read_exact(fd, back.data(), back.size()) && back == msg;
            }
            close(fd);
            ok += good ? 1 : 0;
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    say("4 threads x 200 round trips ok=%d", ok.load());
    // One socket: a thread blocked in read, woken by data the echo returns for another thread's write.
    const int fd = tcp_connect(g_port);
    std::vector<char> got;
    std::thread reader([&] {
        std::vector<char> buf(4096);
        while (got.size() < 100000) {
            const ssize_t n = read(fd, buf.data(), buf.size());
            if (n <= 0) {
                break;
            }
            got.insert(got.end(), buf.begin(), buf.begin() + n);
        }
    });
    usleep(50000); // the reader blocks first
    const auto data = pattern(100000, 9);
    std::thread writer([&] { (void)write_all(fd, data.data(), data.size()); });
    writer.join();
    reader.join();
    say("shared socket: reader got %zu same=%d", got.size(), got == data);
    close(fd);
    say("client done");
}

// --- memcache: many connections speaking memcached's text protocol (a client for the apps test) ---

bool read_until(int fd, std::string& buf, const std::string& end) {
    char chunk[4096];
    while (buf.find(end) == std::string::npos) {
        const ssize_t n = read(fd, chunk, sizeof chunk);
        if (n <= 0) {
            return false;
        }
        buf.append(chunk, static_cast<std::size_t>(n));
    }
    return true;
}

void client_memcache() {
    constexpr int k_threads = 4;
    constexpr int k_conns_per_thread = 8;
    constexpr int k_rounds = 50;
    std::atomic<int> good{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([t, &good] {
            std::vector<int> fds;
            for (int c = 0; c < k_conns_per_thread; ++c) {
                fds.push_back(tcp_connect(g_port));
            }
            bool ok = true;
            for (int r = 0; r < k_rounds && ok; ++r) {
                for (std::size_t c = 0; c < fds.size() && ok; ++c) {
                    const std::string key = "k" + std::to_string(t) + "_" + std::to_string(c) + "_" + std::to_string(r);
                    const std::string value = "value-" + key + std::string(static_cast<std::size_t>(r * 13 % 400), 'x');
                    const std::string cmd = "set " + key + " 0 0 " + std::to_string(value.size()) + "\r\n" + value +
                                            "\r\nget " + key + "\r\n";
                    std::string reply;
                    ok = write_all(fds[c], cmd.data(), cmd.size()) && read_until(fds[c], reply, "END\r\n") &&
                         reply.rfind("STORED\r\nVALUE " + key, 0) == 0 && reply.find(value) != std::string::npos;
                }
            }
            for (int fd : fds) {
                (void)write(fd, "quit\r\n", 6);
                close(fd);
            }
            good += ok ? 1 : 0;
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    say("memcache threads=%d connections=%d ok=%d", k_threads, k_threads * k_conns_per_thread, good.load());
    say("client done");
}

// --- attach: what a process sees when it cannot attach (run alone, preloaded) ---------------------

void server_attach() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a = addr_of(g_ip, g_port);
    const auto t0 = Clock::now();
    result("bind", bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a));
    result("listen", listen(fd, 4));
    result("accept", accept(fd, nullptr, nullptr)); // the first use: attaches (and fails)
    result("accept again", accept(fd, nullptr, nullptr));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    std::printf("# took %lld ms\n", static_cast<long long>(ms));
    say("bounded=%d", ms < 8000);
    close(fd);
    say("server done");
}

// --- forkchild: the child of a process that uses a socket -------------------------------------

void client_forkchild() {
    const int fd = tcp_connect(g_port);
    result("parent write", write(fd, "ping", 4));
    char buf[8];
    result0("parent read", read_exact(fd, buf, 4) ? 0 : -1);
    const pid_t kid = fork();
    if (kid == 0) {
        // On the fabric the connection lives in the parent's stack: this process cannot use it.
        result("child write inherited", write(fd, "oops", 4));
        result("child close inherited", close(fd));
        // New sockets of the child use the kernel.
        const int k = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in lo = addr_of("127.0.0.1", 1);
        result("child connect loopback", connect(k, reinterpret_cast<sockaddr*>(&lo), sizeof lo));
        close(k);
        std::fflush(stdout);
        _exit(0);
    }
    int st = 0;
    (void)waitpid(kid, &st, 0);
    say("child exited=%d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    result("parent write after fork", write(fd, "pong", 4));
    result0("parent read after fork", read_exact(fd, buf, 4) ? 0 : -1);
    close(fd);
    say("client done");
}

// --- exec: attach, then exec another program ------------------------------------------------------

void server_echo() {
    const int lfd = tcp_listener(g_port);
    say("READY");
    const int c = accept_one(lfd);
    echo_loop(c);
    close(c);
    close(lfd);
    say("server done");
}

// Wake-ups under concurrency: eight connections answered at once, both ends sleeping in
// epoll_wait() between rounds, so readiness changes race with the sleeper's own wake-up
// handling. A lost wake-up shows as a wait that runs into its timeout with data pending (a
// race of exactly this kind once left redis-server waking only on its 100 ms timer).
constexpr int k_wake_conns = 8;
constexpr int k_wake_timeout_ms = 1000;
constexpr auto k_wake_slow = std::chrono::milliseconds(400);

void server_wakeups() {
    const int lfd = tcp_listener(g_port);
    const int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    (void)epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    say("READY");
    int open_conns = 0;
    int accepted = 0;
    while (accepted < k_wake_conns || open_conns > 0) {
        epoll_event out[16];
        const int n = epoll_wait(ep, out, 16, k_wake_timeout_ms);
        for (int i = 0; i < n; ++i) {
            const int fd = out[i].data.fd;
            if (fd == lfd) {
                const int c = accept_one(lfd);
                if (c >= 0) {
                    ev.data.fd = c;
                    (void)epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                    ++accepted;
                    ++open_conns;
                }
                continue;
            }
            char buf[64];
            const ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                (void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
                close(fd);
                --open_conns;
            } else if (!write_all(fd, buf, static_cast<std::size_t>(r))) {
                say("# echo write failed: %s", std::strerror(errno));
            }
        }
    }
    close(ep);
    close(lfd);
    say("server done");
}

void client_wakeups() {
    std::array<int, k_wake_conns> fds{};
    const int ep = epoll_create1(0);
    for (int& fd : fds) {
        fd = tcp_connect(g_port);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        (void)epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    int slow = 0;
    int rounds = 0;
    bool replies_ok = true;
    const auto end = Clock::now() + std::chrono::seconds(3);
    while (Clock::now() < end && replies_ok) {
        for (int fd : fds) {
            replies_ok = replies_ok && write_all(fd, "w", 1);
        }
        int got = 0;
        while (got < k_wake_conns && replies_ok) {
            epoll_event out[k_wake_conns];
            const auto before = Clock::now();
            const int n = epoll_wait(ep, out, k_wake_conns, k_wake_timeout_ms);
            if (Clock::now() - before >= k_wake_slow) {
                ++slow;
            }
            if (n < 0 && errno != EINTR) {
                replies_ok = false;
            }
            for (int i = 0; i < n; ++i) {
                char c = 0;
                const ssize_t r = read(out[i].data.fd, &c, 1);
                if (r == 1 && c == 'w') {
                    ++got;
                } else if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    replies_ok = false;
                }
            }
        }
        ++rounds;
    }
    for (int fd : fds) {
        close(fd);
    }
    close(ep);
    say("# wakeups: %d rounds of %d replies", rounds, k_wake_conns);
    say("wakeups: replies %s", replies_ok ? "ok" : "failed");
    say("wakeups: waits over %lld ms: %d", static_cast<long long>(k_wake_slow.count()), slow);
    say("client done");
}

void client_exec() {
    const int fd = tcp_connect(g_port);
    result("write", write(fd, "hello", 5));
    char buf[8];
    result0("read", read_exact(fd, buf, 5) ? 0 : -1);
    std::fflush(stdout);
    execl("/bin/echo", "echo", "exec ok", static_cast<char*>(nullptr));
    say("exec failed: %s", std::strerror(errno));
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s server|client <family> <ip> <port>\n", argv[0]);
        return 2;
    }
    const std::string role = argv[1];
    const std::string family = argv[2];
    g_ip = argv[3];
    g_port = std::atoi(argv[4]);
    struct Family {
        const char* name;
        void (*server)();
        void (*client)();
    };
    const Family families[] = {
        {"stream", server_stream, client_stream}, {"nonblock", server_nonblock, client_nonblock},
        {"epoll", server_epoll, client_epoll},    {"poll", server_poll, client_poll},
        {"udp", server_udp, client_udp},          {"signals", server_signals, client_signals},
        {"fork", server_fork, client_fork},       {"threads", server_threads, client_threads},
        {"attach", server_attach, server_attach}, {"exec", server_echo, client_exec},
        {"memcache", server_echo, client_memcache},  {"wakeups", server_wakeups, client_wakeups},  {"forkchild", server_echo, client_forkchild},
    };
    for (const Family& f : families) {
        if (family == f.name) {
            (role == "server" ? f.server : f.client)();
            return 0;
        }
    }
    std::fprintf(stderr, "unknown family '%s'\n", family.c_str());
    return 2;
}
