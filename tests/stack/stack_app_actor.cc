// SPDX-License-Identifier: BSD-3-Clause
// An application process on the fabric for the stack tests: a Runtime with one stack per
// --stack, driven from stdin. Servers and clients are app threads using stack/api.h only.
//
//   stack_app_actor --prefix P [--huge DIR] --stack SLOT:LCORE:CPU... [--spin US] [--eal ARG]...
//       prints "HELLO pid=N" and waits for "start" (the test primary claims the slots for this pid
//       first), then "STARTED stacks=N";
//   stack_app_actor --mgr SOCKET [--queues N] [--port NAME]
//       asks gazelle-mgr (fabric/mgr_client.h) for N queues, prints "ATTACHED slots=a,b" and
//       starts at once ("STARTED stacks=N"); detaches from the manager on quit.
// Commands (one reply line each, servers reply at once, clients when done):
//   echo PORT [STACK]             TCP echo server on every stack (or stack index STACK) -> SERVING
//   http PORT [STACK]             HTTP/1.0 server                      -> SERVING
//   udpecho PORT [STACK]          UDP echo server                      -> SERVING
//   load IP PORT CONNS PAR BYTES [TIMEOUT_S [STACK]]
//                                 CONNS connections (PAR at a time, round robin over the stacks or
//                                 on STACK), each sends BYTES of a per-connection pattern and checks
//                                 the echo                             -> LOAD done= failed= ...
//   rtt IP PORT COUNT SIZE        one connection, COUNT request/response rounds -> RTT p50_us= ...
//   udprtt IP PORT COUNT          UDP request/response rounds          -> UDPRTT ok= p50_us= ...
//   hold IP PORT NPORTS COUNT PAR [TIMEOUT_S]
//                                 opens COUNT more idle connections on stack 0 (PAR connecting at
//                                 a time, destination ports PORT..PORT+NPORTS-1 in turn: each
//                                 destination has only 16384 ephemeral ports) and keeps them open
//                                 until quit                           -> HOLD done= failed= held= ...
//   servers                       counters of the servers              -> SERVERS accepted= ...
//   quit                          stops the runtime and exits 0
#include <arpa/inet.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fabric/mgr_client.h"
#include "stack/api.h"
#include "stack/runtime.h"

namespace gs = gazelle::stack;
using Clock = std::chrono::steady_clock;

namespace {

std::uint32_t ip(const std::string& text) {
    in_addr a{};
    inet_pton(AF_INET, text.c_str(), &a);
    return a.s_addr;
}

std::vector<std::string> words(const std::string& line) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < line.size()) {
        const auto end = line.find(' ', at);
        if (end != at) {
            out.push_back(line.substr(at, end == std::string::npos ? std::string::npos : end - at));
        }
        if (end == std::string::npos) {
            break;
        }
        at = end + 1;
    }
    return out;
}

bool read_line(std::string& line) {
    static std::string buffer;
    for (;;) {
        if (const auto nl = buffer.find('\n'); nl != std::string::npos) {
            line = buffer.substr(0, nl);
            buffer.erase(0, nl + 1);
            return true;
        }
        char chunk[256];
        const ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        buffer.append(chunk, static_cast<std::size_t>(n));
    }
}

std::mutex g_print;
__attribute__((format(printf, 1, 2))) void say(const char* format, ...) {
    std::lock_guard lock(g_print);
    va_list args;
    va_start(args, format);
    std::vprintf(format, args);
    va_end(args);
    std::fflush(stdout);
}

// The byte at offset i of connection `id`'s payload.
std::uint8_t pattern(std::uint32_t id, std::uint32_t i) {
    std::uint32_t x = (i >> 2) * 2654435761u ^ (id * 40503u + 0x9e37u);
    x ^= x >> 15;
    return static_cast<std::uint8_t>(x >> (8 * (i & 3)));
}

// --- servers -----------------------------------------------------------------------------------

enum class ServerKind { echo, http, udp_echo };

struct Server {
    ServerKind kind;
    std::vector<gs::Socket*> listeners;
    gs::Poller poller;
    std::thread thread;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> closed{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> bytes{0};

    struct Conn {
        std::string in;
        std::string out;
        bool eof = false;
        bool responded = false;
    };
    std::unordered_map<gs::Socket*, Conn> conns;

    bool is_listener(gs::Socket* s) const { return std::find(listeners.begin(), listeners.end(), s) != listeners.end(); }

    void finish(gs::Socket* s, bool error) {
        if (error) {
            errors.fetch_add(1);
        }
        poller.remove(s);
        gs::close(s);
        conns.erase(s);
        closed.fetch_add(1);
    }

    // Returns false when the connection is finished (closed).
    bool flush(gs::Socket* s, Conn& c) {
        while (!c.out.empty()) {
            const ssize_t n = gs::send(s, c.out.data(), c.out.size());
            if (n == -EAGAIN) {
                return true;
            }
            if (n < 0) {
                finish(s, true);
                return false;
            }
            c.out.erase(0, static_cast<std::size_t>(n));
        }
        return true;
    }

    void serve_tcp(gs::Socket* s) {
        auto it = conns.find(s);
        if (it == conns.end()) {
            return;
        }
        Conn& c = it->second;
        if (!flush(s, c)) {
            return;
        }
        char buf[16384];
        for (;;) {
            const ssize_t n = gs::recv(s, buf, sizeof buf);
            if (n > 0) {
                bytes.fetch_add(static_cast<std::uint64_t>(n));
                if (kind == ServerKind::echo) {
                    c.out.append(buf, static_cast<std::size_t>(n));
                    if (!flush(s, c)) {
                        return;
                    }
                } else {
                    c.in.append(buf, static_cast<std::size_t>(n));
                    if (!c.responded && c.in.find("\r\n\r\n") != std::string::npos) {
                        const std::string body = "hello from gazelle stack " +
                                                 std::to_string(gs::stack_slot(gs::stack_of(s))) + "\n";
                        c.out = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
                        c.responded = true;
                        c.eof = true; // close once the response is out
                        if (!flush(s, c)) {
                            return;
                        }
                    }
                }
                continue;
            }
            if (n == 0) {
                c.eof = true;
                break;
            }
            if (n == -EAGAIN) {
                break;
            }
            finish(s, true);
            return;
        }
        if (c.eof && c.out.empty()) {
            finish(s, false);
        }
    }

    void serve_udp(gs::Socket* s) {
        char buf[65536];
        for (;;) {
            gs::Ipv4Endpoint from;
            const ssize_t n = gs::recv_from(s, buf, sizeof buf, &from);
            if (n < 0) {
                break;
            }
            bytes.fetch_add(static_cast<std::uint64_t>(n));
            (void)gs::send_to(s, buf, static_cast<std::size_t>(n), from);
        }
    }

    void run() {
        std::vector<gs::Socket*> ready(64);
        while (!stop.load()) {
            const unsigned n = poller.wait(ready, 100);
            for (unsigned i = 0; i < n; ++i) {
                gs::Socket* s = ready[i];
                if (kind == ServerKind::udp_echo) {
                    serve_udp(s);
                } else if (is_listener(s)) {
                    for (;;) {
                        int error = 0;
                        gs::Socket* c = gs::accept(s, nullptr, &error);
                        if (c == nullptr) {
                            break;
                        }
                        accepted.fetch_add(1);
                        conns.emplace(c, Conn{});
                        (void)poller.add(c); // queued at once if data is already there
                    }
                } else {
                    serve_tcp(s);
                }
            }
        }
        for (auto& [s, c] : conns) {
            poller.remove(s);
            gs::close(s);
        }
        conns.clear();
        for (gs::Socket* l : listeners) {
            poller.remove(l);
            gs::close(l);
        }
    }
};

// --- clients -------------------------------------------------------------------------------------

struct LoadResult {
    unsigned done = 0;
    unsigned failed = 0;
    unsigned resets = 0;
    unsigned refused = 0;
    unsigned mismatches = 0;
    std::uint64_t bytes = 0;
    int first_error = 0;
    double usec = 0;
};

LoadResult run_load(gs::Runtime& rt, gs::Ipv4Endpoint to, unsigned total, unsigned parallel, std::uint32_t size,
                    unsigned timeout_s, int only_stack) {
    struct Conn {
        std::uint32_t id = 0;
        std::uint32_t sent = 0;
        std::uint32_t received = 0;
        bool established = false;
        Clock::time_point progress{};
    };
    // A connection that makes no progress this long has lost its peer (a peer that died silently
    // while we wait for its data sends nothing that could reset us).
    constexpr auto stall_limit = std::chrono::seconds(3);
    LoadResult r;
    gs::Poller poller;
    std::unordered_map<gs::Socket*, Conn> conns;
    std::vector<std::uint8_t> payload(size);
    std::vector<std::uint8_t> buf(65536);
    unsigned started = 0;
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::seconds(timeout_s);
    auto fail = [&](gs::Socket* s, int error) {
        r.failed += 1;
        r.resets += error == -ECONNRESET ? 1 : 0;
        r.refused += error == -ECONNREFUSED ? 1 : 0;
        if (r.first_error == 0) {
            r.first_error = error;
        }
        poller.remove(s);
        gs::close(s);
        conns.erase(s);
    };
    auto drive = [&](gs::Socket* s) {
        auto it = conns.find(s);
        if (it == conns.end()) {
            return;
        }
        Conn& c = it->second;
        c.progress = Clock::now();
        const std::uint32_t ev = gs::events(s);
        if ((ev & gs::k_error) != 0) {
            fail(s, gs::socket_error(s));
            return;
        }
        if (!c.established) {
            if ((ev & gs::k_writable) == 0) {
                if ((ev & gs::k_hangup) != 0) {
                    fail(s, -ECONNABORTED);
                }
                return;
            }
            c.established = true;
        }
        while (c.sent < size) {
            for (std::uint32_t i = c.sent; i < size && i < c.sent + 65536; ++i) {
                payload[i] = pattern(c.id, i);
            }
            const ssize_t n = gs::send(s, payload.data() + c.sent, size - c.sent);
            if (n == -EAGAIN) {
                break;
            }
            if (n < 0) {
                fail(s, static_cast<int>(n));
                return;
            }
            c.sent += static_cast<std::uint32_t>(n);
        }
        for (;;) {
            const ssize_t n = gs::recv(s, buf.data(), buf.size());
            if (n > 0) {
                for (ssize_t i = 0; i < n; ++i) {
                    if (buf[static_cast<std::size_t>(i)] != pattern(c.id, c.received + static_cast<std::uint32_t>(i))) {
                        r.mismatches += 1;
                    }
                }
                c.received += static_cast<std::uint32_t>(n);
                r.bytes += static_cast<std::uint64_t>(n);
                if (c.received >= size) {
                    r.done += 1;
                    poller.remove(s);
                    gs::close(s);
                    conns.erase(s);
                    return;
                }
                continue;
            }
            if (n == -EAGAIN) {
                return;
            }
            fail(s, n == 0 ? -EPIPE : static_cast<int>(n));
            return;
        }
    };
    std::vector<gs::Socket*> ready(64);
    while ((started < total || !conns.empty()) && Clock::now() < deadline) {
        while (started < total && conns.size() < parallel) {
            gs::Stack& stack = rt.stack(only_stack >= 0 ? static_cast<std::size_t>(only_stack) : started % rt.size());
            int error = 0;
            gs::Socket* s = gs::socket_open(stack, gs::SocketType::tcp, &error);
            if (s == nullptr) {
                r.failed += 1;
                r.first_error = r.first_error == 0 ? error : r.first_error;
                ++started;
                continue;
            }
            const int rc = gs::connect(s, to);
            if (rc != 0) {
                r.failed += 1;
                r.first_error = r.first_error == 0 ? rc : r.first_error;
                gs::close(s);
                ++started;
                continue;
            }
            conns.emplace(s, Conn{started, 0, 0, false, Clock::now()});
            ++started;
            (void)poller.add(s);
        }
        const unsigned n = poller.wait(ready, 100);
        for (unsigned i = 0; i < n; ++i) {
            drive(ready[i]);
        }
        const auto now = Clock::now();
        std::vector<gs::Socket*> stalled;
        for (auto& [s, c] : conns) {
            if (now - c.progress > stall_limit) {
                stalled.push_back(s);
            }
        }
        for (gs::Socket* s : stalled) {
            fail(s, -ETIMEDOUT);
        }
    }
    for (auto& [s, c] : conns) { // timed out
        r.failed += 1;
        r.first_error = r.first_error == 0 ? -ETIMEDOUT : r.first_error;
        poller.remove(s);
        gs::close(s);
    }
    r.failed += total - started;
    r.usec = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
    return r;
}

// Client commands (load, rtt, udprtt) run on threads of their own. Finished ones are joined at
// the next command: a soak's thousands of loads kept as many exited, unjoined threads, whose
// stacks grew the actor by 16 KiB per load (crash_soak_mp_test's resident-memory check).
class ClientThreads {
public:
    template <typename Work> void start(Work work) {
        reap();
        auto done = std::make_shared<std::atomic<bool>>(false);
        threads_.push_back({std::thread([work = std::move(work), done] {
                                work();
                                done->store(true, std::memory_order_release);
                            }),
                            done});
    }
    void join_all() {
        for (auto& t : threads_) {
            t.thread.join();
        }
        threads_.clear();
    }

private:
    struct Running {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    void reap() {
        std::erase_if(threads_, [](Running& t) {
            if (!t.done->load(std::memory_order_acquire)) {
                return false;
            }
            t.thread.join();
            return true;
        });
    }
    std::vector<Running> threads_;
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) {
        return 0;
    }
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

void run_rtt(gs::Runtime& rt, gs::Ipv4Endpoint to, unsigned count, std::uint32_t size) {
    gs::Socket* s = gs::socket_open(rt.stack(0), gs::SocketType::tcp);
    int rc = s != nullptr ? gs::connect(s, to) : -ENOMEM;
    if (rc == 0) {
        gs::wait(s, gs::k_writable, 5000);
        rc = gs::socket_error(s);
        if (rc == 0 && (gs::events(s) & gs::k_writable) == 0) {
            rc = -ETIMEDOUT;
        }
    }
    std::vector<double> samples;
    std::vector<std::uint8_t> msg(size, 0x5a);
    std::vector<std::uint8_t> buf(size);
    for (unsigned round = 0; rc == 0 && round < count; ++round) {
        const auto t0 = Clock::now();
        std::uint32_t sent = 0;
        while (sent < size) {
            const ssize_t n = gs::send(s, msg.data() + sent, size - sent);
            if (n == -EAGAIN) {
                gs::wait(s, gs::k_writable, 1000);
                continue;
            }
            if (n < 0) {
                rc = static_cast<int>(n);
                break;
            }
            sent += static_cast<std::uint32_t>(n);
        }
        std::uint32_t got = 0;
        while (rc == 0 && got < size) {
            const ssize_t n = gs::recv(s, buf.data(), size - got);
            if (n == -EAGAIN) {
                gs::wait(s, gs::k_readable, 1000);
                continue;
            }
            if (n <= 0) {
                rc = n == 0 ? -EPIPE : static_cast<int>(n);
                break;
            }
            got += static_cast<std::uint32_t>(n);
        }
        samples.push_back(static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()) / 1000.0);
    }
    if (s != nullptr) {
        gs::close(s);
    }
    double sum = 0;
    for (double v : samples) {
        sum += v;
    }
    say("RTT ok=%d error=%d rounds=%zu avg_us=%.1f p50_us=%.1f p99_us=%.1f max_us=%.1f\n", rc == 0 ? 1 : 0, rc,
        samples.size(), samples.empty() ? 0.0 : sum / static_cast<double>(samples.size()), percentile(samples, 0.5),
        percentile(samples, 0.99), percentile(samples, 1.0));
}

void run_udp_rtt(gs::Runtime& rt, gs::Ipv4Endpoint to, unsigned count) {
    gs::Socket* s = gs::socket_open(rt.stack(0), gs::SocketType::udp);
    std::vector<double> samples;
    unsigned ok = 0;
    for (unsigned round = 0; s != nullptr && round < count; ++round) {
        char msg[64];
        std::snprintf(msg, sizeof msg, "udp round %u", round);
        const auto t0 = Clock::now();
        if (gs::send_to(s, msg, std::strlen(msg), to) < 0) {
            continue;
        }
        char buf[128];
        gs::Ipv4Endpoint from;
        ssize_t n = -EAGAIN;
        const auto deadline = Clock::now() + std::chrono::milliseconds(1000);
        while ((n = gs::recv_from(s, buf, sizeof buf, &from)) == -EAGAIN && Clock::now() < deadline) {
            gs::wait(s, gs::k_readable, 100);
        }
        if (n == static_cast<ssize_t>(std::strlen(msg)) && std::memcmp(buf, msg, std::strlen(msg)) == 0 && from == to) {
            ++ok;
            samples.push_back(static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()) / 1000.0);
        }
    }
    if (s != nullptr) {
        gs::close(s);
    }
    say("UDPRTT ok=%u rounds=%u p50_us=%.1f p99_us=%.1f\n", ok, count, percentile(samples, 0.5),
        percentile(samples, 0.99));
}

struct HoldResult {
    unsigned done = 0;
    unsigned failed = 0;
    int first_error = 0;
    double usec = 0;
};

// Opens `count` connections and keeps the established ones in `held` (idle: nothing is sent), for
// what N open connections cost (conn_scale_bench). Runs on the command thread: the reply is the
// end of the opening.
HoldResult hold_connections(gs::Stack& stack, std::uint32_t addr, std::uint16_t first_port, unsigned nports,
                            unsigned count, unsigned parallel, unsigned timeout_s, std::vector<gs::Socket*>& held) {
    HoldResult r;
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::seconds(timeout_s);
    auto fail = [&r](int error) {
        r.failed += 1;
        r.first_error = r.first_error == 0 ? error : r.first_error;
    };
    gs::Poller poller;
    std::unordered_map<gs::Socket*, bool> pending; // connecting
    std::vector<gs::Socket*> ready(256);
    unsigned started = 0;
    while ((started < count || !pending.empty()) && Clock::now() < deadline) {
        while (started < count && pending.size() < parallel) {
            const auto port = static_cast<std::uint16_t>(first_port + (held.size() + started) % nports);
            ++started;
            int error = 0;
            gs::Socket* s = gs::socket_open(stack, gs::SocketType::tcp, &error);
            if (s == nullptr) {
                fail(error);
                continue;
            }
            if (const int rc = gs::connect(s, gs::Ipv4Endpoint{addr, htons(port)}); rc != 0) {
                fail(rc);
                gs::close(s);
                continue;
            }
            pending.emplace(s, true);
            (void)poller.add(s);
        }
        const unsigned n = poller.wait(ready, 100);
        for (unsigned i = 0; i < n; ++i) {
            gs::Socket* s = ready[i];
            const std::uint32_t ev = gs::events(s);
            if ((ev & (gs::k_error | gs::k_hangup)) != 0) {
                const int error = gs::socket_error(s);
                fail(error != 0 ? error : -EPIPE);
                pending.erase(s);
                gs::close(s);
            } else if ((ev & gs::k_writable) != 0) {
                poller.remove(s);
                pending.erase(s);
                held.push_back(s);
                r.done += 1;
            }
        }
    }
    for (auto& [s, unused] : pending) { // timed out
        fail(-ETIMEDOUT);
        gs::close(s);
    }
    r.failed += count - started;
    r.usec = static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
    return r;
}

struct Options {
    std::string mgr_socket;
    unsigned queues = 1;
    std::string port_name;
    std::string prefix;
    std::string huge;
    std::vector<gs::StackAssignment> stacks;
    std::vector<std::string> eal;
    gs::StackOptions stack;
};

bool parse(int argc, char** argv, Options& o) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i];
        const std::string value = argv[i + 1];
        if (key == "--mgr") {
            o.mgr_socket = value;
        } else if (key == "--queues") {
            o.queues = static_cast<unsigned>(std::stoul(value));
        } else if (key == "--port") {
            o.port_name = value;
        } else if (key == "--prefix") {
            o.prefix = value;
        } else if (key == "--huge") {
            o.huge = value;
        } else if (key == "--stack") {
            unsigned slot = 0, lcore = 0, cpu = 0;
            if (std::sscanf(value.c_str(), "%u:%u:%u", &slot, &lcore, &cpu) != 3) {
                return false;
            }
            o.stacks.push_back({static_cast<gazelle::fabric::QueueSlot>(slot), static_cast<std::uint16_t>(lcore),
                                static_cast<std::uint16_t>(cpu)});
        } else if (key == "--spin") {
            o.stack.idle_spin_us = static_cast<unsigned>(std::stoul(value));
        } else if (key == "--eal") {
            o.eal.push_back(value);
        } else {
            return false;
        }
    }
    return !o.mgr_socket.empty() || (!o.prefix.empty() && !o.stacks.empty());
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    Options options;
    if (!parse(argc, argv, options)) {
        std::fprintf(stderr, "stack_app_actor: bad arguments\n");
        return 2;
    }
    gs::AttachPlan plan;
    std::optional<gazelle::fabric::Attachment> attachment;
    if (!options.mgr_socket.empty()) {
        gazelle::fabric::AttachOptions request;
        request.socket_path = options.mgr_socket;
        request.queues = options.queues;
        request.program = "stack_app_actor";
        if (!options.port_name.empty()) {
            request.selector = gazelle::fabric::mgr_protocol::PortSelector::by_name;
            request.port_name = options.port_name;
        }
        request.extra_eal_args = {"--log-level=lib.eal:error"};
        auto granted = gazelle::fabric::attach_to_manager(request);
        if (!granted) {
            say("REFUSED code=%d message=%s\n", granted.error().code, granted.error().message.c_str());
            return 1;
        }
        attachment.emplace(std::move(*granted));
        plan = gs::plan_from_manager(*attachment);
        std::string slots;
        for (auto slot : attachment->slots()) {
            slots += (slots.empty() ? "" : ",") + std::to_string(slot);
        }
        say("ATTACHED pid=%d slots=%s\n", static_cast<int>(getpid()), slots.c_str());
    } else {
        say("HELLO pid=%d\n", static_cast<int>(getpid()));
        std::string go;
        if (!read_line(go) || go != "start") {
            return 1;
        }
        plan.stacks = options.stacks;
        std::vector<std::string> extra = {"--log-level=lib.eal:error"};
        extra.insert(extra.end(), options.eal.begin(), options.eal.end());
        plan.eal_args = gs::secondary_eal_args(options.prefix, options.huge, options.stacks, extra);
    }
    std::string line;
    auto runtime = gs::Runtime::start(plan, options.stack);
    if (!runtime) {
        say("ERROR code=%d %s\n", runtime.error().code, runtime.error().message.c_str());
        return 1;
    }
    gs::Runtime& rt = **runtime;
    say("STARTED stacks=%zu\n", rt.size());

    std::vector<std::unique_ptr<Server>> servers;
    ClientThreads clients;
    std::vector<gs::Socket*> held;
    while (read_line(line)) {
        const auto w = words(line);
        if (w.empty()) {
            continue;
        }
        if (w[0] == "quit") {
            break;
        }
        if ((w[0] == "echo" || w[0] == "http" || w[0] == "udpecho") && (w.size() == 2 || w.size() == 3)) {
            auto server = std::make_unique<Server>();
            server->kind = w[0] == "echo" ? ServerKind::echo : w[0] == "http" ? ServerKind::http : ServerKind::udp_echo;
            const auto port = htons(static_cast<std::uint16_t>(std::stoul(w[1])));
            int rc = 0;
            const std::size_t first = w.size() == 3 ? std::stoul(w[2]) : 0;
            const std::size_t last = w.size() == 3 ? first + 1 : rt.size();
            for (std::size_t i = first; i < last && rc == 0; ++i) {
                gs::Socket* s = gs::socket_open(rt.stack(i), server->kind == ServerKind::udp_echo ? gs::SocketType::udp
                                                                                                   : gs::SocketType::tcp);
                rc = s == nullptr ? -ENOMEM : gs::bind(s, gs::Ipv4Endpoint{0, port});
                if (rc == 0 && server->kind != ServerKind::udp_echo) {
                    rc = gs::listen(s, 1024);
                }
                if (s != nullptr) {
                    server->listeners.push_back(s);
                    (void)server->poller.add(s);
                }
            }
            Server* raw = server.get();
            server->thread = std::thread([raw] { raw->run(); });
            servers.push_back(std::move(server));
            say("SERVING ok=%d rc=%d\n", rc == 0 ? 1 : 0, rc);
        } else if (w[0] == "load" && w.size() >= 6) {
            const gs::Ipv4Endpoint to{ip(w[1]), htons(static_cast<std::uint16_t>(std::stoul(w[2])))};
            const auto total = static_cast<unsigned>(std::stoul(w[3]));
            const auto parallel = static_cast<unsigned>(std::stoul(w[4]));
            const auto size = static_cast<std::uint32_t>(std::stoul(w[5]));
            const unsigned timeout_s = w.size() > 6 ? static_cast<unsigned>(std::stoul(w[6])) : 40;
            const int only_stack = w.size() > 7 ? std::stoi(w[7]) : -1;
            clients.start([&rt, to, total, parallel, size, timeout_s, only_stack] {
                const LoadResult r = run_load(rt, to, total, parallel, size, timeout_s, only_stack);
                say("LOAD done=%u failed=%u resets=%u refused=%u mismatches=%u bytes=%llu first_error=%d usec=%.0f\n",
                    r.done, r.failed, r.resets, r.refused, r.mismatches, static_cast<unsigned long long>(r.bytes),
                    r.first_error, r.usec);
            });
        } else if (w[0] == "rtt" && w.size() == 5) {
            const gs::Ipv4Endpoint to{ip(w[1]), htons(static_cast<std::uint16_t>(std::stoul(w[2])))};
            const auto count = static_cast<unsigned>(std::stoul(w[3]));
            const auto size = static_cast<std::uint32_t>(std::stoul(w[4]));
            clients.start([&rt, to, count, size] { run_rtt(rt, to, count, size); });
        } else if (w[0] == "udprtt" && w.size() == 4) {
            const gs::Ipv4Endpoint to{ip(w[1]), htons(static_cast<std::uint16_t>(std::stoul(w[2])))};
            const auto count = static_cast<unsigned>(std::stoul(w[3]));
            clients.start([&rt, to, count] { run_udp_rtt(rt, to, count); });
        } else if (w[0] == "hold" && (w.size() == 6 || w.size() == 7)) {
            const HoldResult r = hold_connections(rt.stack(0), ip(w[1]), static_cast<std::uint16_t>(std::stoul(w[2])),
                                                  std::max(1u, static_cast<unsigned>(std::stoul(w[3]))),
                                                  static_cast<unsigned>(std::stoul(w[4])),
                                                  std::max(1u, static_cast<unsigned>(std::stoul(w[5]))),
                                                  w.size() == 7 ? static_cast<unsigned>(std::stoul(w[6])) : 60, held);
            say("HOLD done=%u failed=%u held=%zu first_error=%d usec=%.0f\n", r.done, r.failed, held.size(),
                r.first_error, r.usec);
        } else if (w[0] == "servers") {
            std::uint64_t accepted = 0, closed = 0, errors = 0, bytes = 0;
            for (auto& s : servers) {
                accepted += s->accepted.load();
                closed += s->closed.load();
                errors += s->errors.load();
                bytes += s->bytes.load();
            }
            say("SERVERS accepted=%llu closed=%llu errors=%llu bytes=%llu\n", static_cast<unsigned long long>(accepted),
                static_cast<unsigned long long>(closed), static_cast<unsigned long long>(errors),
                static_cast<unsigned long long>(bytes));
        } else {
            say("UNKNOWN %s\n", line.c_str());
        }
    }
    clients.join_all();
    for (gs::Socket* s : held) {
        gs::close(s);
    }
    for (auto& s : servers) {
        s->stop.store(true);
        s->thread.join();
    }
    rt.stop();
    if (attachment) {
        const auto detached = attachment->detach();
        say("DETACHED ok=%d\n", detached.ok() ? 1 : 0);
    }
    say("BYE\n");
    return 0;
}
