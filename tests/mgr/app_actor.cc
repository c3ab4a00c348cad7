// SPDX-License-Identifier: BSD-3-Clause
// An application for the gazelle-mgr tests: registers with fabric/mgr_client, then (unless
// --no-eal) starts EAL as a secondary with the arguments the manager gave, attaches the fabric and
// obeys commands on stdin, printing one line per event.
//
//   app_actor --socket PATH [--queues N] [--ip A.B.C.D | --mac M | --port NAME] [--program NAME]
//             [--timeout-ms T] [--no-eal]
//
// Lines: "ATTACHED pid= port= slots=a,b lcores=x,y cpus=c,d prefix= huge=" or "REFUSED code= message=...",
// then (EAL) "READY lcore= owner_ok=". Commands:
//   hold N      allocate N mbufs of the first queue's pool, tagged for it     -> HELD n=
//   rules N     add N connection rules owned by the first queue               -> RULES n=
//   run         unpark every queue and bump their heartbeats continuously     -> RUNNING
//   stall       stop bumping (stay unparked: looks hung)                      -> STALLED
//   release     free the mbufs, delete the rules, park                        -> RELEASED
//   detach      release, then detach from the manager                         -> DETACHED ok= code= message=
//   again       a second attach from this process                             -> AGAIN ok= code= message=
//   peek SLOT   the registry entry of any slot                                -> PEEK slot= owner= state= lcore=
//   close       close the registration connection without detaching           -> CLOSED
//   quit        exit without detaching
#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <rte_lcore.h>

#include "fabric/eal.h"
#include "fabric/fabric.h"
#include "fabric/flow_key.h"
#include "fabric/mgr_client.h"

using namespace gazelle;
using namespace gazelle::fabric;

namespace {

std::string joined(std::span<const std::uint16_t> values) {
    std::string out;
    for (auto v : values) {
        out += (out.empty() ? "" : ",") + std::to_string(v);
    }
    return out;
}

bool read_command(std::string& line, int timeout_ms) {
    static std::string buffer;
    for (;;) {
        if (const auto nl = buffer.find('\n'); nl != std::string::npos) {
            line = buffer.substr(0, nl);
            buffer.erase(0, nl + 1);
            return true;
        }
        pollfd pfd{STDIN_FILENO, POLLIN, 0};
        if (poll(&pfd, 1, timeout_ms) != 1) {
            return false;
        }
        char chunk[256];
        const ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n <= 0) {
            buffer += "quit\n";
        } else {
            buffer.append(chunk, static_cast<std::size_t>(n));
        }
        timeout_ms = 0;
    }
}

FlowKey rule_key(unsigned i) {
    return FlowKey::connection(6, htonl(0xc6120001u), htons(8000), htonl(0xc6120102u),
                               htons(static_cast<std::uint16_t>(20000 + i)));
}

void print_result(const char* tag, const Result<void>& r) {
    std::printf("%s ok=%d code=%d message=%s\n", tag, r.ok() ? 1 : 0, r.ok() ? 0 : r.error().code,
                r.ok() ? "" : r.error().message.c_str());
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    AttachOptions options;
    bool use_eal = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--socket") {
            options.socket_path = next();
        } else if (a == "--queues") {
            options.queues = static_cast<unsigned>(std::stoul(next()));
        } else if (a == "--ip") {
            options.selector = mgr_protocol::PortSelector::by_ipv4;
            inet_pton(AF_INET, next().c_str(), &options.ipv4);
        } else if (a == "--mac") {
            options.selector = mgr_protocol::PortSelector::by_mac;
            unsigned m[6] = {};
            std::sscanf(next().c_str(), "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
            for (int k = 0; k < 6; ++k) {
                options.mac[static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(m[k]);
            }
        } else if (a == "--port") {
            options.selector = mgr_protocol::PortSelector::by_name;
            options.port_name = next();
        } else if (a == "--program") {
            options.program = next();
        } else if (a == "--timeout-ms") {
            options.timeout = std::chrono::milliseconds(std::stol(next()));
        } else if (a == "--no-eal") {
            use_eal = false;
        } else {
            std::fprintf(stderr, "app_actor: unknown argument '%s'\n", a.c_str());
            return 2;
        }
    }
    auto attached = attach_to_manager(options);
    if (!attached) {
        std::printf("REFUSED code=%d message=%s\n", attached.error().code, attached.error().message.c_str());
        return 0;
    }
    std::optional<Attachment> attachment(std::move(*attached));
    std::printf("ATTACHED pid=%d port=%u slots=%s lcores=%s cpus=%s prefix=%s huge=%s\n", getpid(), attachment->port(),
                joined(attachment->slots()).c_str(), joined(attachment->lcores()).c_str(),
                joined(attachment->cpus()).c_str(), attachment->file_prefix().c_str(), attachment->huge_dir().c_str());
    const std::vector<QueueSlot> slots(attachment->slots().begin(), attachment->slots().end());
    const std::vector<Epoch> epochs(attachment->epochs().begin(), attachment->epochs().end());

    std::unique_ptr<Fabric> fabric;
    std::optional<EalSession> eal;
    if (use_eal) {
        auto args = attachment->eal_args();
        args.emplace_back("--log-level=lib.eal:error");
        if (auto ok = eal_init("app_actor", args); !ok) {
            std::printf("ERROR %s\n", ok.error().message.c_str());
            return 1;
        }
        eal.emplace();
        auto f = Fabric::attach();
        if (!f) {
            std::printf("ERROR %s\n", f.error().message.c_str());
            return 1;
        }
        fabric = std::move(*f);
        bool owner_ok = true;
        for (std::size_t i = 0; i < slots.size(); ++i) {
            const QueueEntry& q = fabric->registry().queue(slots[i]);
            owner_ok = owner_ok && q.owner_pid.load() == getpid() && q.lcore_id.load() == attachment->lcores()[i] &&
                       q.epoch.load() == epochs[i];
        }
        std::printf("READY lcore=%u owner_ok=%d\n", rte_lcore_id(), owner_ok ? 1 : 0);
    }

    std::vector<rte_mbuf*> held;
    unsigned rules = 0;
    bool beating = false;
    std::string line;
    const auto release = [&] {
        if (!fabric) {
            return;
        }
        free_burst(std::span<rte_mbuf* const>(held.data(), held.size()));
        held.clear();
        for (unsigned i = 0; i < rules; ++i) {
            const FlowKey key = rule_key(i);
            (void)fabric->flows().remove_connection(key, flow_hash(key), slots[0]);
        }
        while (fabric->flows().deferred_pending(slots[0]) != 0) {
            (void)fabric->flows().reclaim_deferred(slots[0]);
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        rules = 0;
        for (QueueSlot s : slots) {
            fabric->registry().queue(s).parked.store(1);
        }
        beating = false;
    };
    for (;;) {
        if (beating && fabric) {
            for (QueueSlot s : slots) {
                fabric->registry().queue(s).heartbeat.fetch_add(1);
            }
        }
        if (!read_command(line, beating ? 1 : 20)) {
            continue;
        }
        std::vector<std::string> w;
        for (std::size_t at = 0; at < line.size();) {
            const auto end = line.find(' ', at);
            w.push_back(line.substr(at, end - at));
            at = end == std::string::npos ? line.size() : end + 1;
        }
        if (w.empty()) {
            continue;
        }
        if (w[0] == "quit") {
            return 0;
        }
        if (w[0] == "hold" && w.size() == 2 && fabric) {
            const unsigned n = static_cast<unsigned>(std::stoul(w[1]));
            rte_mempool* pool = fabric->pool(slots[0]);
            for (unsigned i = 0; i < n && pool != nullptr; ++i) {
                rte_mbuf* m = nullptr;
                if (alloc_burst(pool, std::span<rte_mbuf*>(&m, 1), fabric->registry().owner_tag(slots[0])) == 1) {
                    held.push_back(m);
                }
            }
            std::printf("HELD n=%zu\n", held.size());
        } else if (w[0] == "rules" && w.size() == 2 && fabric) {
            const unsigned n = static_cast<unsigned>(std::stoul(w[1]));
            for (unsigned i = 0; i < n; ++i) {
                const FlowKey key = rule_key(rules);
                if (fabric->flows().add_connection(key, flow_hash(key), slots[0], epochs[0]) == 0) {
                    ++rules;
                }
            }
            std::printf("RULES n=%u\n", rules);
        } else if (w[0] == "run" && fabric) {
            for (QueueSlot s : slots) {
                fabric->registry().queue(s).parked.store(0);
            }
            beating = true;
            std::printf("RUNNING\n");
        } else if (w[0] == "stall") {
            beating = false;
            std::printf("STALLED\n");
        } else if (w[0] == "release") {
            release();
            std::printf("RELEASED\n");
        } else if (w[0] == "detach" && attachment) {
            release();
            print_result("DETACHED", attachment->detach());
        } else if (w[0] == "again") {
            auto second = attach_to_manager(options);
            std::printf("AGAIN ok=%d code=%d message=%s\n", second.ok() ? 1 : 0, second.ok() ? 0 : second.error().code,
                        second.ok() ? "" : second.error().message.c_str());
        } else if (w[0] == "peek" && w.size() == 2 && fabric) {
            const auto s = static_cast<QueueSlot>(std::stoul(w[1]));
            const QueueEntry& q = fabric->registry().queue(s);
            std::printf("PEEK slot=%u owner=%d state=%u lcore=%u\n", s, q.owner_pid.load(),
                        static_cast<unsigned>(q.state.load()), static_cast<unsigned>(q.lcore_id.load()));
        } else if (w[0] == "close") {
            attachment.reset();
            std::printf("CLOSED\n");
        } else {
            std::printf("UNKNOWN %s\n", line.c_str());
        }
    }
}
