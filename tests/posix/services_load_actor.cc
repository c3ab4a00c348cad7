// SPDX-License-Identifier: BSD-3-Clause
// Load client for tests/posix/services_mp_test: keeps a few persistent connections to each of
// redis-server, nginx and memcached busy at once, checks every reply and counts every request and
// every failure per service. A plain POSIX sockets program (one thread per connection, blocking
// calls with SO_RCVTIMEO/SO_SNDTIMEO); the test runs it preloaded with liblstack.so.
//
//   services_load_actor <ip> <redis port> <http port> <memcached port> <connections> <timeout ms> <page file>
//
// <page file> is the file nginx serves as /page.html (the expected body). Commands on stdin:
//   report   prints "REPORT redis_ok=N redis_fail=N redis_max_us=N redis_fresh=N http_ok=..."
//            (ok/fail cumulative; max_us is the slowest successful request since the last report;
//            fresh: connections that have succeeded on a socket connected after the last mark)
//   mark     starts a new generation: from now on a connection counts as fresh once it has
//            succeeded on a socket it connected after this command (the test marks right after
//            killing a server: a connection that was open to the dead one is not fresh until it
//            failed, reconnected to the restarted server and got an answer there)
//   reprint  prints the next failures too (the test sends it once the victim serves again, so
//            that a failure after that point is shown however many came before)
//   stop     finishes the requests in flight, closes every connection, prints a last REPORT, exits
// A failure is a refused or timed-out connect, a reset, an early close, a timeout or a wrong
// reply; the connection is then closed and made again after 100 ms (each attempt counts). The
// first failures of each service are printed as "# fail ..." lines (a bounded number, so that a
// dead service cannot fill the pipe while the test is not reading).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::mutex g_out;

void say(const char* format, ...) __attribute__((format(printf, 1, 2)));
void say(const char* format, ...) {
    std::lock_guard lock(g_out);
    va_list ap;
    va_start(ap, format);
    std::vprintf(format, ap);
    va_end(ap);
    std::printf("\n");
    std::fflush(stdout);
}

struct Params {
    std::string ip;
    int timeout_ms = 10000;
    std::string page; // the body nginx must return
};

constexpr int k_max_connections = 64; // per service

struct Counters {
    const char* name;
    int port = 0;
    std::atomic<std::uint64_t> ok{0};
    std::atomic<std::uint64_t> fail{0};
    std::atomic<std::uint64_t> max_us{0};
    std::atomic<int> printed{0};
    // Per connection: the mark generation of its latest success's socket (see "mark").
    std::vector<std::atomic<std::uint64_t>> succeeded_generation = std::vector<std::atomic<std::uint64_t>>(k_max_connections);

    void failed(int conn, const std::string& what) {
        fail.fetch_add(1, std::memory_order_relaxed);
        if (printed.fetch_add(1) < 12) {
            // t: CLOCK_MONOTONIC in ms (steady_clock), the test's clock too.
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
            say("# fail %s conn=%d t=%lld ms: %s", name, conn, static_cast<long long>(ms), what.c_str());
        }
    }
    void succeeded(std::uint64_t us) {
        ok.fetch_add(1, std::memory_order_relaxed);
        std::uint64_t seen = max_us.load(std::memory_order_relaxed);
        while (us > seen && !max_us.compare_exchange_weak(seen, us)) {
        }
    }
};

std::string errno_text(const char* step) { return std::string(step) + ": " + std::strerror(errno); }

// A connected blocking socket with both timeouts set, or -1 (and why).
int connect_to(const Params& p, int port, std::string& why) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        why = errno_text("socket");
        return -1;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, p.ip.c_str(), &a.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
        why = errno_text("connect");
        close(fd);
        return -1;
    }
    pollfd pfd{fd, POLLOUT, 0};
    const int n = poll(&pfd, 1, p.timeout_ms);
    int err = 0;
    socklen_t len = sizeof err;
    if (n <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        why = n == 0 ? "connect: timed out" : n < 0 ? errno_text("poll") : std::string("connect: ") + std::strerror(err);
        close(fd);
        return -1;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{p.timeout_ms / 1000, (p.timeout_ms % 1000) * 1000};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

bool send_all(int fd, const std::string& data, std::string& why) {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
        if (n <= 0) {
            why = n == 0 ? "send: 0" : errno_text("send");
            return false;
        }
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// Reads into buf until it holds at least `want` bytes.
bool read_at_least(int fd, std::string& buf, std::size_t want, std::string& why) {
    char chunk[4096];
    while (buf.size() < want) {
        const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            why = n == 0 ? "recv: peer closed" : errno == EAGAIN ? "recv: timed out" : errno_text("recv");
            return false;
        }
        buf.append(chunk, static_cast<std::size_t>(n));
    }
    return true;
}

bool read_until(int fd, std::string& buf, const std::string& end, std::string& why) {
    while (buf.find(end) == std::string::npos) {
        if (!read_at_least(fd, buf, buf.size() + 1, why)) {
            return false;
        }
    }
    return true;
}

// One request/reply of each protocol on a connection; false (and why) if anything is wrong.
// `close_after` is set when the server announced it closes the connection (HTTP).
using Exchange = bool (*)(const Params&, int fd, std::uint64_t round, int conn, bool& close_after, std::string& why);

bool redis_exchange(const Params&, int fd, std::uint64_t round, int conn, bool&, std::string& why) {
    const std::string key = "k" + std::to_string(conn);
    const std::string value = "v" + std::to_string(round) + std::string(round % 200, 'r');
    const std::string cmd = "*3\r\n$3\r\nSET\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n$" +
                            std::to_string(value.size()) + "\r\n" + value + "\r\n*2\r\n$3\r\nGET\r\n$" +
                            std::to_string(key.size()) + "\r\n" + key + "\r\n";
    const std::string expect = "+OK\r\n$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
    std::string reply;
    if (!send_all(fd, cmd, why) || !read_at_least(fd, reply, expect.size(), why)) {
        return false;
    }
    if (reply != expect) {
        why = "wrong reply: " + reply.substr(0, 60);
        return false;
    }
    return true;
}

bool http_exchange(const Params& p, int fd, std::uint64_t, int, bool& close_after, std::string& why) {
    if (!send_all(fd, "GET /page.html HTTP/1.1\r\nHost: services\r\n\r\n", why)) {
        return false;
    }
    std::string reply;
    if (!read_until(fd, reply, "\r\n\r\n", why)) {
        return false;
    }
    const std::size_t head = reply.find("\r\n\r\n") + 4;
    const std::string headers = reply.substr(0, head);
    if (headers.rfind("HTTP/1.1 200 ", 0) != 0) {
        why = "status: " + headers.substr(0, headers.find('\r'));
        return false;
    }
    const auto cl = headers.find("Content-Length: ");
    if (cl == std::string::npos) {
        why = "no Content-Length";
        return false;
    }
    const std::size_t length = std::strtoul(headers.c_str() + cl + 16, nullptr, 10);
    if (!read_at_least(fd, reply, head + length, why)) {
        return false;
    }
    if (reply.size() != head + length || reply.compare(head, length, p.page) != 0) {
        why = "wrong body (" + std::to_string(reply.size() - head) + " bytes)";
        return false;
    }
    close_after = headers.find("Connection: close") != std::string::npos;
    return true;
}

bool memcached_exchange(const Params&, int fd, std::uint64_t round, int conn, bool&, std::string& why) {
    const std::string key = "k" + std::to_string(conn);
    const std::string value = "v" + std::to_string(round) + std::string(round % 300, 'm');
    const std::string cmd = "set " + key + " 0 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\nget " + key + "\r\n";
    const std::string expect =
        "STORED\r\nVALUE " + key + " 0 " + std::to_string(value.size()) + "\r\n" + value + "\r\nEND\r\n";
    std::string reply;
    if (!send_all(fd, cmd, why) || !read_at_least(fd, reply, expect.size(), why)) {
        return false;
    }
    if (reply != expect) {
        why = "wrong reply: " + reply.substr(0, 60);
        return false;
    }
    return true;
}

std::atomic<bool> g_stop{false};
std::atomic<std::uint64_t> g_generation{0}; // "mark" commands so far

void run_connection(const Params& p, Counters& c, Exchange exchange, int conn) {
    int fd = -1;
    std::uint64_t round = 0;
    std::uint64_t socket_generation = 0; // g_generation when fd was connected
    while (!g_stop.load(std::memory_order_relaxed)) {
        std::string why;
        if (fd < 0) {
            socket_generation = g_generation.load();
            fd = connect_to(p, c.port, why);
            if (fd < 0) {
                c.failed(conn, why);
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                continue;
            }
        }
        bool close_after = false;
        const auto t0 = Clock::now();
        if (!exchange(p, fd, ++round, conn, close_after, why)) {
            c.failed(conn, why);
            close(fd);
            fd = -1;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            continue;
        }
        c.succeeded(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()));
        c.succeeded_generation[static_cast<std::size_t>(conn)].store(socket_generation + 1);
        if (close_after) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc != 8) {
        std::fprintf(stderr, "usage: %s <ip> <redis port> <http port> <memcached port> <connections> <timeout ms> <page>\n",
                     argv[0]);
        return 2;
    }
    Params p;
    p.ip = argv[1];
    p.timeout_ms = std::atoi(argv[6]);
    std::ifstream page(argv[7], std::ios::binary);
    std::stringstream body;
    body << page.rdbuf();
    p.page = body.str();
    if (!page || p.page.empty()) {
        std::fprintf(stderr, "cannot read %s\n", argv[7]);
        return 2;
    }
    const int connections = std::atoi(argv[5]);
    if (connections < 1 || connections > k_max_connections) {
        std::fprintf(stderr, "connections: 1 to %d, not %s\n", k_max_connections, argv[5]);
        return 2;
    }
    Counters services[3];
    services[0].name = "redis";
    services[0].port = std::atoi(argv[2]);
    services[1].name = "http";
    services[1].port = std::atoi(argv[3]);
    services[2].name = "memcached";
    services[2].port = std::atoi(argv[4]);
    const Exchange exchanges[3] = {redis_exchange, http_exchange, memcached_exchange};
    std::vector<std::thread> threads;
    for (int s = 0; s < 3; ++s) {
        for (int c = 0; c < connections; ++c) {
            threads.emplace_back(run_connection, std::cref(p), std::ref(services[s]), exchanges[s], c);
        }
    }
    auto report = [&services, connections] {
        std::string line = "REPORT";
        for (Counters& c : services) {
            // +1: a success records its socket's generation + 1, so 0 is "never succeeded".
            const std::uint64_t fresh_mark = g_generation.load() + 1;
            int fresh = 0;
            for (int conn = 0; conn < connections; ++conn) {
                fresh += c.succeeded_generation[static_cast<std::size_t>(conn)].load() >= fresh_mark ? 1 : 0;
            }
            line += std::string(" ") + c.name + "_ok=" + std::to_string(c.ok.load()) + " " + c.name +
                    "_fail=" + std::to_string(c.fail.load()) + " " + c.name +
                    "_max_us=" + std::to_string(c.max_us.exchange(0)) + " " + c.name + "_fresh=" + std::to_string(fresh);
        }
        say("%s", line.c_str());
    };
    std::string command;
    while (std::getline(std::cin, command) && command != "stop") {
        if (command == "report") {
            report();
        } else if (command == "mark") {
            g_generation.fetch_add(1);
        } else if (command == "reprint") {
            for (Counters& c : services) {
                c.printed.store(0);
            }
        }
    }
    g_stop = true;
    for (auto& t : threads) {
        t.join();
    }
    report();
    say("load done");
    return 0;
}
