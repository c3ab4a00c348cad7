// SPDX-License-Identifier: BSD-3-Clause
// An unmodified POSIX program for the exhaustion tests (exhaustion_mp_test), meant to run
// preloaded with liblstack.so. It reads commands from stdin, one per line, and answers each with
// one line; a server thread serves what it listens on in the background:
//
//   rlimit N|+N              RLIMIT_NOFILE soft limit := N, or N above the lowest free
//                            descriptor                  -> "RLIMIT ok limit=N|errno=NAME"
//   listen IP PORT echo|sink a listener served by the server thread:  -> "LISTEN ok|errno=NAME"
//                            echo: every byte goes back; sink: bytes are checked against the
//                            stream pattern and counted (read only while not paused)
//   pause | resume           the server thread stops / starts reading sink connections
//   served                   "SERVED accepted=N open=N accept_errors=N last_accept_errno=NAME
//                            sink_bytes=N sink_bad=N"
//   unserve N                the server closes its N oldest served connections
//   sockets N                socket() up to N times, keeping them  -> "SOCKETS ok=N errno=NAME"
//   freesockets              closes what `sockets` kept
//   connect IP PORT N MS     up to N connections (each non-blocking, MS to complete); stops at
//                            the first failure -> "CONNECT ok=N errno=NAME ms=N"
//   echo BYTES               a round trip of BYTES on every held connection -> "ECHO ok=N bad=N"
//   close N                  closes the N oldest held connections      -> "CLOSE n=N"
//   blast IP PORT CONNS BYTES  in the background: CONNS non-blocking connections, each sends
//                            BYTES of the stream pattern as fast as the stack takes them
//   blastmore BYTES          each connection sends BYTES more
//   blastend                 the connections close once everything is sent
//   blaststatus              "BLAST done=0|1 conns=N sent=N eagain=N failed=N errno=NAME ms=N"
//   quit
//
// The stream pattern: byte i of a connection is (i % 251).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string errno_name(int e) {
    switch (e) {
    case 0: return "0";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENETDOWN: return "ENETDOWN";
    case ENETUNREACH: return "ENETUNREACH";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EADDRINUSE: return "EADDRINUSE";
    case ENOSPC: return "ENOSPC";
    case EINPROGRESS: return "EINPROGRESS";
    case EPIPE: return "EPIPE";
    case EINVAL: return "EINVAL";
    default: return "errno" + std::to_string(e);
    }
}

long ms_since(Clock::time_point t) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

sockaddr_in address(const std::string& ip, int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    (void)inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    return a;
}

// The descriptor the next socket() gets (liblstack.so keeps a few of its own far above).
int lowest_free_fd() {
    int fd = 0;
    while (fcntl(fd, F_GETFD) >= 0) {
        ++fd;
    }
    return fd;
}

void set_nonblocking(int fd) { (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Non-blocking connect with a bound on the wait. 0 or an errno.
int connect_within(int fd, const sockaddr_in& to, int timeout_ms) {
    set_nonblocking(fd);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0) {
        return 0;
    }
    if (errno != EINPROGRESS) {
        return errno;
    }
    pollfd p{fd, POLLOUT, 0};
    const int n = poll(&p, 1, timeout_ms);
    if (n == 0) {
        return ETIMEDOUT;
    }
    int err = 0;
    socklen_t len = sizeof err;
    (void)getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
}

// --- the server thread ------------------------------------------------------------------------

struct Served {
    int fd;
    bool sink;
    std::uint64_t offset = 0; // sink: bytes checked so far
};

struct Server {
    std::mutex mutex;
    std::vector<std::pair<int, bool>> listeners; // fd, sink
    std::deque<Served> conns;
    std::atomic<bool> paused{false};
    std::atomic<bool> stop{false};
    std::uint64_t accepted = 0;
    std::uint64_t accept_errors = 0;
    int last_accept_errno = 0;
    std::uint64_t sink_bytes = 0;
    std::uint64_t sink_bad = 0;

    void run() {
        std::vector<char> buf(65536);
        std::vector<char> pattern(buf.size() + 251); // the stream pattern from any offset
        for (std::size_t i = 0; i < pattern.size(); ++i) {
            pattern[i] = static_cast<char>(i % 251);
        }
        while (!stop.load()) {
            std::vector<pollfd> fds;
            {
                std::lock_guard lock(mutex);
                for (const auto& [fd, sink] : listeners) {
                    fds.push_back({fd, POLLIN, 0});
                }
                for (const Served& c : conns) {
                    if (!(c.sink && paused.load())) {
                        fds.push_back({c.fd, POLLIN, 0});
                    }
                }
            }
            if (fds.empty()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
                continue;
            }
            if (poll(fds.data(), fds.size(), 20) <= 0) {
                continue;
            }
            bool accept_failed = false;
            std::unique_lock lock(mutex);
            for (const pollfd& p : fds) {
                if (p.revents == 0) {
                    continue;
                }
                const auto l = std::find_if(listeners.begin(), listeners.end(), [&](auto& x) { return x.first == p.fd; });
                if (l != listeners.end()) {
                    const int c = accept(p.fd, nullptr, nullptr);
                    if (c < 0) {
                        if (errno != EAGAIN) {
                            accept_errors += 1;
                            last_accept_errno = errno;
                            accept_failed = true;
                        }
                        continue;
                    }
                    set_nonblocking(c);
                    accepted += 1;
                    conns.push_back(Served{c, l->second});
                    continue;
                }
                const auto it = std::find_if(conns.begin(), conns.end(), [&](const Served& s) { return s.fd == p.fd; });
                if (it == conns.end()) {
                    continue; // closed by `unserve` meanwhile
                }
                const ssize_t n = read(it->fd, buf.data(), buf.size());
                if (n == 0 || (n < 0 && errno != EAGAIN)) {
                    (void)close(it->fd);
                    conns.erase(it);
                    continue;
                }
                if (n < 0) {
                    continue;
                }
                if (it->sink) {
                    const char* expected = pattern.data() + it->offset % 251;
                    if (std::memcmp(buf.data(), expected, static_cast<std::size_t>(n)) != 0) {
                        for (ssize_t i = 0; i < n; ++i) {
                            sink_bad += buf[static_cast<std::size_t>(i)] != expected[i] ? 1u : 0u;
                        }
                    }
                    it->offset += static_cast<std::uint64_t>(n);
                    sink_bytes += static_cast<std::uint64_t>(n);
                } else {
                    ssize_t off = 0;
                    while (off < n) { // small echoes: the peer reads them back at once
                        const ssize_t w = write(it->fd, buf.data() + off, static_cast<std::size_t>(n - off));
                        if (w > 0) {
                            off += w;
                        } else if (w < 0 && errno != EAGAIN) {
                            break;
                        }
                    }
                }
            }
            lock.unlock();
            if (accept_failed) {
                // EMFILE leaves the connection queued and the listener readable: do not spin.
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        }
    }
};

// --- the blaster thread -----------------------------------------------------------------------

struct Blast {
    std::atomic<std::uint64_t> target{0}; // bytes each connection sends in all (so far)
    std::atomic<bool> finish{false};      // close once target is reached
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> sent{0};
    std::atomic<std::uint64_t> eagain{0};
    std::atomic<unsigned> conns{0};
    std::atomic<unsigned> failed{0};
    std::atomic<int> last_errno{0};
    std::atomic<long> ms{0};
    std::thread thread;

    void run(sockaddr_in to, unsigned nconns) {
        const auto start = Clock::now();
        std::vector<int> fds;
        std::vector<std::uint64_t> offset;
        for (unsigned i = 0; i < nconns; ++i) {
            const int fd = socket(AF_INET, SOCK_STREAM, 0);
            const int err = fd < 0 ? errno : connect_within(fd, to, 5000);
            if (err != 0) {
                failed += 1;
                last_errno = err;
                if (fd >= 0) {
                    (void)close(fd);
                }
                continue;
            }
            fds.push_back(fd);
            offset.push_back(0);
            conns += 1;
        }
        std::vector<char> pattern(251 * 256);
        for (std::size_t i = 0; i < pattern.size(); ++i) {
            pattern[i] = static_cast<char>(i % 251);
        }
        const auto deadline = Clock::now() + std::chrono::seconds(60);
        while (Clock::now() < deadline) {
            const std::uint64_t bytes = target.load();
            const bool last = finish.load(); // read before checking: a final blastmore counts
            std::vector<pollfd> want;
            for (std::size_t i = 0; i < fds.size(); ++i) {
                if (offset[i] < bytes && fds[i] >= 0) {
                    want.push_back({fds[i], POLLOUT, 0});
                }
            }
            if (want.empty()) {
                if (last && bytes == target.load()) {
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
                continue;
            }
            (void)poll(want.data(), want.size(), 50);
            for (std::size_t i = 0; i < fds.size(); ++i) {
                while (fds[i] >= 0 && offset[i] < bytes) {
                    const std::size_t at = offset[i] % 251;
                    const std::size_t len = std::min<std::uint64_t>(bytes - offset[i], pattern.size() - at);
                    const ssize_t w = send(fds[i], pattern.data() + at, len, MSG_NOSIGNAL);
                    if (w > 0) {
                        offset[i] += static_cast<std::uint64_t>(w);
                        sent += static_cast<std::uint64_t>(w);
                        continue;
                    }
                    if (w < 0 && errno == EAGAIN) {
                        eagain += 1;
                    } else {
                        failed += 1;
                        last_errno = w < 0 ? errno : 0;
                        (void)close(fds[i]);
                        fds[i] = -1;
                    }
                    break;
                }
            }
        }
        // Everything is in the stack's hands: an orderly close delivers the rest, then FIN.
        for (int fd : fds) {
            if (fd >= 0) {
                (void)close(fd);
            }
        }
        ms = ms_since(start);
        done = true;
    }
};

} // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    Server server;
    std::thread server_thread([&] { server.run(); });
    std::vector<int> kept_sockets;
    std::deque<int> held;
    Blast blast;
    std::string line;
    std::printf("READY\n");
    while (std::getline(std::cin, line)) {
        std::istringstream in(line);
        std::string cmd;
        in >> cmd;
        if (cmd == "quit") {
            break;
        }
        if (cmd == "rlimit") {
            // "+N": room for N more descriptors (the EAL and liblstack.so hold some already).
            std::string arg;
            in >> arg;
            rlim_t n = std::stoul(arg[0] == '+' ? arg.substr(1) : arg);
            if (arg[0] == '+') {
                n += static_cast<rlim_t>(lowest_free_fd());
            }
            rlimit r{};
            (void)getrlimit(RLIMIT_NOFILE, &r);
            r.rlim_cur = std::min(n, r.rlim_max);
            if (setrlimit(RLIMIT_NOFILE, &r) == 0) {
                std::printf("RLIMIT ok limit=%llu\n", static_cast<unsigned long long>(r.rlim_cur));
            } else {
                std::printf("RLIMIT errno=%s\n", errno_name(errno).c_str());
            }
        } else if (cmd == "listen") {
            std::string ip, mode;
            int port = 0;
            in >> ip >> port >> mode;
            const int fd = socket(AF_INET, SOCK_STREAM, 0);
            const int one = 1;
            (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            const sockaddr_in a = address(ip, port);
            if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || listen(fd, 1024) != 0) {
                std::printf("LISTEN errno=%s\n", errno_name(errno).c_str());
                if (fd >= 0) {
                    (void)close(fd);
                }
                continue;
            }
            set_nonblocking(fd);
            std::lock_guard lock(server.mutex);
            server.listeners.emplace_back(fd, mode == "sink");
            std::printf("LISTEN ok\n");
        } else if (cmd == "pause" || cmd == "resume") {
            server.paused = cmd == "pause";
            std::printf("%s ok\n", cmd == "pause" ? "PAUSE" : "RESUME");
        } else if (cmd == "served") {
            std::lock_guard lock(server.mutex);
            std::printf("SERVED accepted=%llu open=%zu accept_errors=%llu last_accept_errno=%s sink_bytes=%llu sink_bad=%llu\n",
                        static_cast<unsigned long long>(server.accepted), server.conns.size(),
                        static_cast<unsigned long long>(server.accept_errors), errno_name(server.last_accept_errno).c_str(),
                        static_cast<unsigned long long>(server.sink_bytes), static_cast<unsigned long long>(server.sink_bad));
        } else if (cmd == "unserve") {
            std::size_t n = 0;
            in >> n;
            std::lock_guard lock(server.mutex);
            std::size_t closed = 0;
            for (; closed < n && !server.conns.empty(); ++closed) {
                (void)close(server.conns.front().fd);
                server.conns.pop_front();
            }
            std::printf("UNSERVE n=%zu\n", closed);
        } else if (cmd == "sockets") {
            unsigned n = 0;
            in >> n;
            unsigned ok = 0;
            int err = 0;
            for (; ok < n; ++ok) {
                const int fd = socket(AF_INET, SOCK_STREAM, 0);
                if (fd < 0) {
                    err = errno;
                    break;
                }
                kept_sockets.push_back(fd);
            }
            std::printf("SOCKETS ok=%u errno=%s\n", ok, errno_name(err).c_str());
        } else if (cmd == "freesockets") {
            for (int fd : kept_sockets) {
                (void)close(fd);
            }
            std::printf("FREESOCKETS n=%zu\n", kept_sockets.size());
            kept_sockets.clear();
        } else if (cmd == "connect") {
            std::string ip;
            int port = 0;
            unsigned n = 0;
            int ms = 0;
            in >> ip >> port >> n >> ms;
            const sockaddr_in to = address(ip, port);
            const auto start = Clock::now();
            unsigned ok = 0;
            int err = 0;
            for (; ok < n; ++ok) {
                const int fd = socket(AF_INET, SOCK_STREAM, 0);
                err = fd < 0 ? errno : connect_within(fd, to, ms);
                if (err != 0) {
                    if (fd >= 0) {
                        (void)close(fd);
                    }
                    break;
                }
                held.push_back(fd);
            }
            std::printf("CONNECT ok=%u errno=%s ms=%ld\n", ok, errno_name(err).c_str(), ms_since(start));
        } else if (cmd == "echo") {
            std::size_t bytes = 0;
            in >> bytes;
            unsigned ok = 0;
            unsigned bad = 0;
            std::vector<char> out(bytes);
            std::vector<char> back(bytes);
            for (std::size_t i = 0; i < bytes; ++i) {
                out[i] = static_cast<char>('a' + i % 26);
            }
            for (int fd : held) {
                bool good = send(fd, out.data(), bytes, MSG_NOSIGNAL) == static_cast<ssize_t>(bytes);
                std::size_t got = 0;
                const auto deadline = Clock::now() + std::chrono::seconds(5);
                while (good && got < bytes && Clock::now() < deadline) {
                    pollfd p{fd, POLLIN, 0};
                    (void)poll(&p, 1, 100);
                    const ssize_t r = recv(fd, back.data() + got, bytes - got, 0);
                    if (r > 0) {
                        got += static_cast<std::size_t>(r);
                    } else if (r == 0 || errno != EAGAIN) {
                        good = false;
                    }
                }
                good = good && got == bytes && std::memcmp(out.data(), back.data(), bytes) == 0;
                (good ? ok : bad) += 1;
            }
            std::printf("ECHO ok=%u bad=%u\n", ok, bad);
        } else if (cmd == "close") {
            std::size_t n = 0;
            in >> n;
            std::size_t closed = 0;
            for (; closed < n && !held.empty(); ++closed) {
                (void)close(held.front());
                held.pop_front();
            }
            std::printf("CLOSE n=%zu\n", closed);
        } else if (cmd == "blast") {
            std::string ip;
            int port = 0;
            unsigned conns = 0;
            std::uint64_t bytes = 0;
            in >> ip >> port >> conns >> bytes;
            const sockaddr_in to = address(ip, port);
            blast.target = bytes;
            blast.thread = std::thread([&blast, to, conns] { blast.run(to, conns); });
            std::printf("BLAST started\n");
        } else if (cmd == "blastmore") {
            std::uint64_t bytes = 0;
            in >> bytes;
            blast.target += bytes;
            std::printf("BLASTMORE ok\n");
        } else if (cmd == "blastend") {
            blast.finish = true;
            std::printf("BLASTEND ok\n");
        } else if (cmd == "blaststatus") {
            std::printf("BLAST done=%d conns=%u sent=%llu eagain=%llu failed=%u errno=%s ms=%ld\n", blast.done.load() ? 1 : 0,
                        blast.conns.load(), static_cast<unsigned long long>(blast.sent.load()),
                        static_cast<unsigned long long>(blast.eagain.load()), blast.failed.load(),
                        errno_name(blast.last_errno.load()).c_str(), blast.ms.load());
        } else {
            std::printf("UNKNOWN %s\n", line.c_str());
        }
    }
    if (blast.thread.joinable()) {
        blast.thread.join();
    }
    server.stop = true;
    server_thread.join();
    for (int fd : held) {
        (void)close(fd);
    }
    for (int fd : kept_sockets) {
        (void)close(fd);
    }
    std::printf("BYE\n");
    return 0;
}
