// SPDX-License-Identifier: BSD-3-Clause
// The stack thread's side of sockets: requests from app threads, lwIP's TCP/UDP callbacks, and
// the flow rules that make the fabric deliver a socket's packets to this stack.
#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include <rte_cycles.h>

extern "C" {
#include "lwip/ip4_addr.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"
}

#include "fabric/flow_key.h"
#include "fabric/softrss.h"
#include "stack/internal/engine.h"

namespace gazelle::stack {

namespace {

constexpr std::uint8_t k_proto_tcp = 6;
constexpr std::uint8_t k_proto_udp = 17;
// lwIP counts half-open connections against a u8 backlog; ours (accepted, not yet taken by the
// app) is separate and larger (Socket::backlog_).
constexpr u8_t k_lwip_backlog = 0xff;
constexpr int k_max_backlog = 65535;

// A connection's flow rule, attached to its pcb (ext arg): removed when lwIP frees the pcb.
struct ConnRule {
    fabric::FlowKey key;
    std::uint32_t hash;
    // A passive open's reservation of one of the process's TCP sockets, until accept() hands it
    // to the Socket (or the pcb dies before the handshake completes).
    bool holds_tcp_slot;
};

int errno_of(err_t err) {
    switch (err) {
    case ERR_OK: return 0;
    case ERR_MEM: return -ENOMEM;
    case ERR_BUF: return -ENOBUFS;
    case ERR_TIMEOUT: return -ETIMEDOUT;
    case ERR_RTE: return -ENETUNREACH;
    case ERR_INPROGRESS: return -EINPROGRESS;
    case ERR_VAL: return -EINVAL;
    case ERR_WOULDBLOCK: return -EAGAIN;
    case ERR_USE: return -EADDRINUSE;
    case ERR_ALREADY: return -EALREADY;
    case ERR_ISCONN: return -EISCONN;
    case ERR_CONN: return -ENOTCONN;
    case ERR_IF: return -ENETDOWN;
    case ERR_ABRT: return -ECONNABORTED;
    case ERR_RST: return -ECONNRESET;
    case ERR_CLSD: return -ENOTCONN;
    case ERR_ARG: return -EINVAL;
    }
    return -EIO;
}

Ipv4Endpoint endpoint_of(const ip_addr_t& ip, u16_t port_host) {
    return Ipv4Endpoint{ip_2_ip4(&ip)->addr, htons(port_host)};
}

} // namespace

// lwIP calls these with the socket (or the engine) as context; they run on the stack thread.
struct TcpCallbacks {
    static err_t accept(void* arg, tcp_pcb* pcb, err_t err);
    static err_t recv(void* arg, tcp_pcb* pcb, pbuf* p, err_t err);
    static err_t sent(void* arg, tcp_pcb* pcb, u16_t len);
    static void error(void* arg, err_t err);
    static err_t connected(void* arg, tcp_pcb* pcb, err_t err);
    static err_t passive_open(u8_t id, tcp_pcb_listen* lpcb, tcp_pcb* cpcb);
    static void destroyed(u8_t id, void* data);
    static void udp_recv(void* arg, udp_pcb* pcb, pbuf* p, const ip_addr_t* addr, u16_t port);
    static void attach_pcb(Socket& s, tcp_pcb* pcb);
};

namespace {
const tcp_ext_arg_callbacks k_listener_callbacks = {nullptr, &TcpCallbacks::passive_open};
const tcp_ext_arg_callbacks k_connection_callbacks = {&TcpCallbacks::destroyed, nullptr};
} // namespace

// --- requests ------------------------------------------------------------------------------------

void StackEngine::execute(Request& r) {
    Socket& s = *r.socket;
    if (r.kind == Request::Kind::kick) {
        // Later app work queues a new kick. An exchange, not a store: service() below must see
        // whatever an app thread wrote before its kick() found the flag still set. A plain store
        // may wait in the store buffer past our reads of the rings (x86 lets loads pass earlier
        // stores), so the app sees "queued" and skips its kick while we read the ring as it was:
        // its data then sat in the tx ring until some other kick (a request/response pair over
        // epoll waited forever, posix.posix_calls_mp_test's wakeups case). Both sides RMW the
        // flag: the app's exchange(true) is then read by ours and synchronises with it.
        (void)s.kick_queued_.exchange(false, std::memory_order_acq_rel);
        service(s);
        s.release();
        return;
    }
    int result = -EINVAL;
    switch (r.kind) {
    case Request::Kind::bind: result = do_bind(s, r.endpoint, r.arg != 0); break;
    case Request::Kind::listen: result = do_listen(s, r.arg); break;
    case Request::Kind::connect: result = do_connect(s, r.endpoint); break;
    case Request::Kind::kick: break;
    }
    r.result = result;
    r.done.store(1, std::memory_order_release);
    detail::futex_wake_private(r.done);
}

int StackEngine::do_bind(Socket& s, Ipv4Endpoint local, bool reuse_address) {
    if ((s.state_.load() & (state::bound | state::dead)) != 0) {
        return -EINVAL;
    }
    if (local.addr != 0 && local.addr != port_.ipv4) {
        return -EADDRNOTAVAIL;
    }
    ip_addr_t ip;
    ip_addr_set_ip4_u32_val(ip, local.addr);
    if (s.type_ == SocketType::udp) {
        udp_pcb* pcb = udp_new();
        if (pcb == nullptr) {
            return -ENOMEM;
        }
        if (reuse_address) {
            ip_set_option(pcb, SOF_REUSEADDR); // lwIP admits a second bind only if both have it
        }
        if (const err_t err = udp_bind(pcb, &ip, ntohs(local.port)); err != ERR_OK) {
            udp_remove(pcb);
            return errno_of(err);
        }
        const Ipv4Endpoint bound{local.addr, htons(pcb->local_port)};
        if (const int rc = add_udp_port_user(bound); rc != 0) {
            udp_remove(pcb);
            return rc;
        }
        s.udp_ = pcb;
        s.listener_rule_ = true;
        s.local_ = bound;
        udp_recv(pcb, &TcpCallbacks::udp_recv, &s);
        attach(s);
        s.state_.fetch_or(state::bound, std::memory_order_release);
        return 0;
    }
    tcp_pcb* pcb = tcp_new();
    if (pcb == nullptr) {
        return -ENOMEM;
    }
    ip_set_option(pcb, SOF_REUSEADDR);
    if (local.port != 0) {
        if (const err_t err = tcp_bind(pcb, &ip, ntohs(local.port)); err != ERR_OK) {
            (void)tcp_close(pcb);
            return errno_of(err);
        }
    } else {
        ip_addr_copy(pcb->local_ip, ip); // the port is chosen at listen()/connect() time
    }
    s.local_ = local;
    TcpCallbacks::attach_pcb(s, pcb);
    attach(s);
    s.state_.fetch_or(state::bound, std::memory_order_release);
    return 0;
}

int StackEngine::do_listen(Socket& s, int backlog) {
    if (s.type_ != SocketType::tcp || (s.state_.load() & (state::connecting | state::connected | state::dead)) != 0) {
        return -EINVAL;
    }
    if ((s.state_.load() & state::listening) != 0) {
        s.backlog_ = std::clamp(backlog, 1, k_max_backlog);
        return 0;
    }
    if (s.tcp_ == nullptr) {
        if (const int rc = do_bind(s, Ipv4Endpoint{}, false); rc != 0) {
            return rc;
        }
    }
    tcp_pcb* pcb = s.tcp_;
    if (pcb->local_port == 0) {
        if (const err_t err = tcp_bind(pcb, &pcb->local_ip, 0); err != ERR_OK) {
            return errno_of(err);
        }
    }
    err_t err = ERR_OK;
    tcp_pcb* lpcb = tcp_listen_with_backlog_and_err(pcb, k_lwip_backlog, &err);
    if (lpcb == nullptr) {
        return errno_of(err);
    }
    s.tcp_ = lpcb; // tcp_listen freed the bound pcb
    tcp_arg(lpcb, &s);
    tcp_accept(lpcb, &TcpCallbacks::accept);
    tcp_ext_arg_set_callbacks(lpcb, ext_id_, &k_listener_callbacks);
    const Ipv4Endpoint local{ip_2_ip4(&lpcb->local_ip)->addr, htons(lpcb->local_port)};
    if (const int rc = add_listener_rule(k_proto_tcp, local); rc != 0) {
        tcp_arg(lpcb, nullptr);
        (void)tcp_close(lpcb);
        s.tcp_ = nullptr;
        detach(s);
        s.state_.fetch_and(~state::bound, std::memory_order_release);
        return rc;
    }
    s.listener_rule_ = true;
    s.local_ = local;
    s.backlog_ = std::clamp(backlog, 1, k_max_backlog);
    s.state_.fetch_or(state::listening, std::memory_order_release);
    return 0;
}

// A local port can serve another connection as long as the 4-tuple differs (every pcb of ours
// has SO_REUSEADDR, so lwIP's own checks are the same): listeners and bound pcbs hold the port,
// connections (also in TIME_WAIT) only their 4-tuple. Runs on the stack thread (a flow table reader).
bool StackEngine::local_port_in_use(std::uint16_t port_host, const ip_addr_t& remote_ip, std::uint16_t remote_port) const {
    for (const tcp_pcb_listen* pcb = tcp_listen_pcbs.listen_pcbs; pcb != nullptr; pcb = pcb->next) {
        if (pcb->local_port == port_host) {
            return true;
        }
    }
    for (const tcp_pcb* pcb = tcp_bound_pcbs; pcb != nullptr; pcb = pcb->next) {
        if (pcb->local_port == port_host) {
            return true;
        }
    }
    // Connections (also in TIME_WAIT) have their flow rule for as long as their pcb lives (it goes
    // in tcp_free()), so the table answers in O(1) what walking tcp_active_pcbs and tcp_tw_pcbs
    // answered in O(connections) for every candidate port: with 30k connections open that walk
    // had brought connect() down to ~600/s (conn_scale_bench). A rule of another stack's also
    // means "in use": its add_connection() would fail with -EEXIST anyway.
    const fabric::FlowKey key = fabric::FlowKey::connection(k_proto_tcp, port_.ipv4, htons(port_host),
                                                            ip_2_ip4(&remote_ip)->addr, htons(remote_port));
    if (flows_.lookup(key, fabric::flow_hash(key)).kind != fabric::FlowHitKind::none) {
        return true;
    }
    // A peer on the fabric keeps its end of a closed connection in the table too, while it lingers
    // in TIME_WAIT (a server that closed first): a SYN reusing that 4-tuple meets the old
    // connection there instead of the listener (lwIP's TIME_WAIT input; Linux would accept a SYN
    // beyond it), and the connect fails: wrk saw 2 to 7 such errors per 400k requests to an nginx
    // closing every 1000th connection (tools/demo). So such a port is taken. A peer off the
    // fabric is not in the table: that case stays (doc/user-guide.md, known differences).
    const fabric::FlowKey peer = fabric::FlowKey::connection(k_proto_tcp, ip_2_ip4(&remote_ip)->addr,
                                                             htons(remote_port), port_.ipv4, htons(port_host));
    return flows_.lookup(peer, fabric::flow_hash(peer)).kind != fabric::FlowHitKind::none;
}

int StackEngine::do_connect(Socket& s, Ipv4Endpoint remote) {
    if (s.type_ == SocketType::udp) {
        return 0; // UDP connect() is app-side only (default destination)
    }
    const std::uint32_t st = s.state_.load();
    if ((st & state::connected) != 0) {
        return -EISCONN;
    }
    if ((st & (state::connecting)) != 0) {
        return -EALREADY;
    }
    if ((st & (state::listening | state::dead)) != 0) {
        return -EINVAL;
    }
    if (remote.addr == 0 || remote.port == 0) {
        return -EINVAL;
    }
    bool created = false;
    if (s.tcp_ == nullptr) {
        tcp_pcb* pcb = tcp_new();
        if (pcb == nullptr) {
            return -ENOMEM;
        }
        ip_set_option(pcb, SOF_REUSEADDR);
        TcpCallbacks::attach_pcb(s, pcb);
        attach(s);
        created = true;
    }
    tcp_pcb* pcb = s.tcp_;
    ip_addr_t remote_ip;
    ip_addr_set_ip4_u32_val(remote_ip, remote.addr);
    ip_addr_set_ip4_u32_val(pcb->remote_ip, remote.addr);
    pcb->remote_port = ntohs(remote.port);
    ip_addr_set_ip4_u32_val(pcb->local_ip, port_.ipv4);
    auto undo = [&](int rc) {
        if (created) {
            s.tcp_ = nullptr;
            tcp_arg(pcb, nullptr);
            tcp_err(pcb, nullptr);
            (void)tcp_close(pcb);
            detach(s);
        }
        return rc;
    };

    int rc = 0;
    bool port_chosen = false;
    if (pcb->local_port != 0) {
        // Bound explicitly: that port, if the 4-tuple is free fabric-wide.
        rc = add_connection_rule(pcb, pcb->local_port);
        if (rc == -EEXIST) {
            return undo(-EADDRINUSE);
        }
        if (rc != 0) {
            return undo(rc);
        }
    } else {
        // A local port whose replies the NIC steers to our own queue (software RSS); the flow
        // rule is added too, so replies still reach us on ports without a RETA, and it makes the
        // port ours fabric-wide (another stack with the same address gets -EEXIST and moves on).
        const fabric::ConnectTuple tuple{ntohl(port_.ipv4), ntohl(remote.addr), ntohs(remote.port)};
        const fabric::PortRange range{stack_.options_.ephemeral_first, stack_.options_.ephemeral_last};
        const auto span = static_cast<std::uint32_t>(range.last - range.first + 1);
        const auto start = static_cast<std::uint16_t>(range.first + rte_rdtsc() % span);
        bool table_full = false;
        auto usable = [&](std::uint16_t candidate) {
            if (table_full || local_port_in_use(candidate, remote_ip, ntohs(remote.port))) {
                return false;
            }
            const int add = add_connection_rule(pcb, candidate);
            table_full = add == -ENOSPC;
            return add == 0;
        };
        Result<std::uint16_t> picked = port_io_.supports_reta()
                                           ? fabric::pick_local_port_if(port_, tuple, reply_queue(), range, start, usable)
                                           : Result<std::uint16_t>(make_error(EADDRNOTAVAIL, ""));
        if (!port_io_.supports_reta()) {
            // The device spreads flows its own way: any free port, the rule brings replies here.
            for (std::uint32_t i = 0; i < span && !picked; ++i) {
                const auto candidate = static_cast<std::uint16_t>(range.first + (start - range.first + i) % span);
                if (usable(candidate)) {
                    picked = candidate;
                }
            }
        }
        if (!picked) {
            return undo(table_full ? -ENOSPC : -EADDRNOTAVAIL);
        }
        // What tcp_bind() does, without its walk of every pcb list for the port (O(connections)
        // per connect; with SO_REUSEADDR on both pcbs, as on all of ours, it never refuses): the
        // port is free for this 4-tuple (local_port_in_use) and the flow rule is ours.
        pcb->local_port = *picked;
        TCP_REG(&tcp_bound_pcbs, pcb);
        port_chosen = true;
    }
    // With SO_REUSEADDR, tcp_connect() makes sure the 4-tuple is unique by walking every active
    // and TIME_WAIT pcb; for a port chosen above the flow rule already makes it unique, so the
    // option is off for that call only (later binds of the port still see it set).
    if (port_chosen) {
        ip_reset_option(pcb, SOF_REUSEADDR);
    }
    const err_t connected = tcp_connect(pcb, &remote_ip, ntohs(remote.port), &TcpCallbacks::connected);
    if (port_chosen) {
        ip_set_option(pcb, SOF_REUSEADDR);
    }
    if (connected != ERR_OK) {
        return undo(errno_of(connected));
    }
    s.local_ = Ipv4Endpoint{port_.ipv4, htons(pcb->local_port)};
    s.remote_ = remote;
    s.state_.fetch_or(state::bound | state::connecting, std::memory_order_release);
    return 0;
}

// The hardware queue connect() wants replies on: ours, or (connect_port_policy other_queue, a
// benchmark setting) the next queue after ours that the RETA points at, when there is one.
std::uint16_t StackEngine::reply_queue() const {
    if (stack_.options_.connect_port_policy != StackOptions::ConnectPortPolicy::other_queue) {
        return hw_queue_;
    }
    std::uint16_t best = hw_queue_;
    unsigned best_distance = 0;
    for (const auto& entry : port_.reta) {
        const std::uint16_t q = entry.load(std::memory_order_relaxed);
        const unsigned distance = (unsigned{q} + port_.nb_queues - hw_queue_) % port_.nb_queues; // 0: our own
        if (q < port_.nb_queues && distance != 0 && (best_distance == 0 || distance < best_distance)) {
            best = q;
            best_distance = distance;
        }
    }
    return best;
}

// --- flow rules ------------------------------------------------------------------------------------

int StackEngine::add_connection_rule(tcp_pcb* pcb, std::uint16_t local_port_host) {
    const fabric::FlowKey key =
        fabric::FlowKey::connection(k_proto_tcp, ip_2_ip4(&pcb->local_ip)->addr, htons(local_port_host),
                                    ip_2_ip4(&pcb->remote_ip)->addr, htons(pcb->remote_port));
    const std::uint32_t hash = fabric::flow_hash(key);
    auto* rule = static_cast<ConnRule*>(arena_.allocate(sizeof(ConnRule)));
    if (rule == nullptr) {
        stats_.drop_alloc_failed += 1;
        return -ENOMEM;
    }
    const int rc = flows_.add_connection(key, hash, stack_.slot_, stack_.epoch_);
    if (rc != 0) {
        arena_.free(rule);
        if (rc == -ENOSPC) {
            stats_.drop_table_full += 1;
        }
        return rc;
    }
    rule->key = key;
    rule->hash = hash;
    rule->holds_tcp_slot = false;
    tcp_ext_arg_set_callbacks(pcb, ext_id_, &k_connection_callbacks);
    tcp_ext_arg_set(pcb, ext_id_, rule);
    connections_ += 1;
    return 0;
}

void StackEngine::remove_connection_rule(const fabric::FlowKey& key, std::uint32_t hash) {
    connections_ -= 1;
    const int rc = flows_.remove_connection(key, hash, stack_.slot_);
    if (rc == -EAGAIN) {
        if (nb_removals_ < k_pending_removals) {
            removals_[nb_removals_++] = PendingRemoval{key, hash, false};
        } else {
            stats_.drop_table_full += 1; // the rule stays until the manager reclaims the queue
        }
    }
}

int StackEngine::add_listener_rule(std::uint8_t proto, const Ipv4Endpoint& local) {
    const int rc = flows_.add_listener(proto, local.addr, local.port, stack_.slot_, stack_.epoch_);
    if (rc == -ENOSPC) {
        stats_.drop_table_full += 1;
    }
    return rc == -EBUSY ? -EAGAIN : rc;
}

void StackEngine::remove_listener_rule(std::uint8_t proto, const Ipv4Endpoint& local) {
    const int rc = flows_.remove_listener(proto, local.addr, local.port, stack_.slot_);
    if (rc == -EAGAIN) {
        if (nb_removals_ < k_pending_removals) {
            removals_[nb_removals_++] = PendingRemoval{fabric::FlowKey::listener(proto, local.addr, local.port), 0, true};
        } else {
            stats_.drop_table_full += 1;
        }
    }
}

// The fabric's rule for a UDP port is one per stack; sockets of this stack sharing the port
// (reuse_address) share it, and the last one to close removes it.
int StackEngine::add_udp_port_user(const Ipv4Endpoint& local) {
    const std::uint64_t key = (std::uint64_t{local.addr} << 16) | local.port;
    auto it = udp_port_users_.find(key);
    if (it != udp_port_users_.end()) {
        ++it->second;
        return 0;
    }
    if (const int rc = add_listener_rule(k_proto_udp, local); rc != 0) {
        return rc;
    }
    udp_port_users_.emplace(key, 1u);
    return 0;
}

void StackEngine::remove_udp_port_user(const Ipv4Endpoint& local) {
    const std::uint64_t key = (std::uint64_t{local.addr} << 16) | local.port;
    auto it = udp_port_users_.find(key);
    if (it == udp_port_users_.end() || --it->second != 0) {
        return;
    }
    udp_port_users_.erase(it);
    remove_listener_rule(k_proto_udp, local);
}

void StackEngine::retry_removals() {
    unsigned kept = 0;
    for (unsigned i = 0; i < nb_removals_; ++i) {
        const PendingRemoval& r = removals_[i];
        const int rc = r.listener ? flows_.remove_listener(r.key.proto, r.key.local_ip, r.key.local_port, stack_.slot_)
                                  : flows_.remove_connection(r.key, r.hash, stack_.slot_);
        if (rc == -EAGAIN) {
            removals_[kept++] = r;
        }
    }
    nb_removals_ = kept;
}

// --- sockets -----------------------------------------------------------------------------------------

void StackEngine::attach(Socket& s) {
    if (s.attached_) {
        return;
    }
    s.add_ref();
    s.attached_ = true;
    s.list_prev_ = nullptr;
    s.list_next_ = sockets_;
    if (sockets_ != nullptr) {
        sockets_->list_prev_ = &s;
    }
    sockets_ = &s;
}

void StackEngine::detach(Socket& s) {
    if (!s.attached_) {
        return;
    }
    if (s.list_prev_ != nullptr) {
        s.list_prev_->list_next_ = s.list_next_;
    } else {
        sockets_ = s.list_next_;
    }
    if (s.list_next_ != nullptr) {
        s.list_next_->list_prev_ = s.list_prev_;
    }
    s.list_prev_ = s.list_next_ = nullptr;
    s.attached_ = false;
    if (s.rx_backlog_ != nullptr) {
        pbuf_free(s.rx_backlog_);
        s.rx_backlog_ = nullptr;
    }
    s.release();
}

// The connection is gone (its pcb is freed or detached): the app sees `error` and end of stream.
void StackEngine::fail(Socket& s, int error) {
    if (error != 0) {
        int expected = 0;
        (void)s.error_.compare_exchange_strong(expected, error);
    }
    s.state_.fetch_or(state::failed | state::dead | state::eof, std::memory_order_release);
    s.state_.fetch_and(~state::connecting, std::memory_order_release);
    s.notify();
    detach(s);
}

void StackEngine::service(Socket& s) {
    const std::uint32_t flags = s.app_flags_.load(std::memory_order_acquire);
    const std::uint32_t st = s.state_.load(std::memory_order_relaxed);
    if ((st & state::dead) != 0 || !s.attached_) {
        return;
    }
    if (s.type_ == SocketType::udp) {
        if ((flags & app_flag::closed) != 0) {
            close_udp(s);
        } else {
            send_datagrams(s);
        }
        return;
    }
    if ((st & state::listening) != 0) {
        if ((flags & app_flag::closed) != 0) {
            close_listener(s);
        }
        return;
    }
    if ((flags & app_flag::abort) != 0 && s.tcp_ != nullptr) {
        tcp_pcb* pcb = s.tcp_;
        tcp_arg(pcb, nullptr);
        tcp_err(pcb, nullptr);
        s.tcp_ = nullptr;
        tcp_abort(pcb);
        fail(s, 0);
        return;
    }
    if (s.tcp_ == nullptr) {
        if ((flags & app_flag::closed) != 0) { // bound only, or a pcb-less socket
            s.state_.fetch_or(state::dead, std::memory_order_release);
            detach(s);
        }
        return;
    }
    update_window(s);
    flush_tx_ring(s);
    maybe_finish_close(s);
}

// Hands the app's consumption back to lwIP as window (lwIP takes at most 0xffff per call).
void StackEngine::update_window(Socket& s) {
    if (s.tcp_ == nullptr) {
        return;
    }
    // First what did not fit into the ring before.
    if (s.rx_backlog_ != nullptr) {
        pbuf* p = s.rx_backlog_;
        s.rx_backlog_ = nullptr;
        deliver_rx(s, p);
        if (s.rx_backlog_ == nullptr && s.fin_pending_) {
            s.fin_pending_ = false;
            s.state_.fetch_or(state::eof, std::memory_order_release);
            s.notify();
        }
    }
    std::uint32_t consumed = s.rx_.consumed_total() - s.recved_total_;
    s.recved_total_ += consumed;
    while (consumed != 0) {
        const auto chunk = static_cast<u16_t>(std::min<std::uint32_t>(consumed, 0xffff));
        tcp_recved(s.tcp_, chunk);
        consumed -= chunk;
    }
}

void StackEngine::deliver_rx(Socket& s, pbuf* p) {
    if (s.rx_backlog_ != nullptr) {
        pbuf_cat(s.rx_backlog_, p);
        return;
    }
    const std::uint32_t room = s.rx_.free_space();
    const std::uint32_t n = std::min<std::uint32_t>(room, p->tot_len);
    std::uint32_t offset = 0;
    for (pbuf* q = p; q != nullptr && offset < n; q = q->next) {
        const std::uint32_t take = std::min<std::uint32_t>(q->len, n - offset);
        s.rx_.copy_at(offset, q->payload, take);
        offset += take;
    }
    s.rx_.publish(n);
    if (n < p->tot_len) {
        s.rx_backlog_ = pbuf_free_header(p, static_cast<u16_t>(n));
    } else {
        pbuf_free(p);
    }
    if (n != 0) {
        s.notify();
    }
}

// Moves data from the app's tx ring into lwIP as far as its send buffer allows.
void StackEngine::flush_tx_ring(Socket& s) {
    tcp_pcb* pcb = s.tcp_;
    if (pcb == nullptr || (s.state_.load() & state::connected) == 0 || s.shutdown_done_) {
        return;
    }
    bool moved = false;
    for (;;) {
        const auto data = s.tx_.contiguous();
        if (data.empty()) {
            break;
        }
        const std::uint32_t room = tcp_sndbuf(pcb);
        if (room == 0 || tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN) {
            break;
        }
        const auto n = static_cast<u16_t>(std::min<std::size_t>({data.size(), room, 0xffff}));
        const u8_t flags = TCP_WRITE_FLAG_COPY | (n < s.tx_.available() ? TCP_WRITE_FLAG_MORE : 0);
        if (tcp_write(pcb, data.data(), n, flags) != ERR_OK) {
            break; // ERR_MEM: retried when lwIP reports sent data
        }
        s.tx_.consume(n);
        moved = true;
    }
    if (moved) {
        (void)tcp_output(pcb);
        s.notify(); // writable again
    }
}

void StackEngine::maybe_finish_close(Socket& s) {
    const std::uint32_t flags = s.app_flags_.load(std::memory_order_acquire);
    tcp_pcb* pcb = s.tcp_;
    if (pcb == nullptr || !s.tx_.empty()) {
        return;
    }
    const bool connected = (s.state_.load() & state::connected) != 0;
    if ((flags & app_flag::shut_wr) != 0 && !s.shutdown_done_ && connected) {
        if (tcp_shutdown(pcb, 0, 1) == ERR_OK) {
            s.shutdown_done_ = true;
            s.state_.fetch_or(state::wr_shut, std::memory_order_release);
        }
    }
    if ((flags & app_flag::closed) != 0 && !s.close_done_) {
        // Everything the app consumed must be announced first: lwIP answers a close with unread
        // data (rcv_wnd below the maximum) with a RST, which would also discard our unsent tail.
        // (This runs from lwIP's sent callback too, ahead of the kick that reports the reads.)
        update_window(s);
        // lwIP keeps the pcb through FIN_WAIT/TIME_WAIT on its own (its flow rule with it).
        tcp_arg(pcb, nullptr);
        tcp_recv(pcb, nullptr);
        tcp_sent(pcb, nullptr);
        tcp_err(pcb, nullptr);
        s.tcp_ = nullptr;
        s.close_done_ = true;
        if (tcp_close(pcb) != ERR_OK) {
            tcp_abort(pcb);
        }
        s.state_.fetch_or(state::dead | state::wr_shut, std::memory_order_release);
        detach(s);
    }
}

void StackEngine::close_listener(Socket& s) {
    if (s.listener_rule_) {
        remove_listener_rule(k_proto_tcp, s.local_);
        s.listener_rule_ = false;
    }
    if (s.tcp_ != nullptr) {
        tcp_arg(s.tcp_, nullptr);
        tcp_accept(s.tcp_, nullptr);
        (void)tcp_close(s.tcp_);
        s.tcp_ = nullptr;
    }
    // Connections accepted after the app stopped taking them: reset (the app drained the rest).
    for (Socket* child = s.accepted_.take_all(); child != nullptr;) {
        Socket* next = child->next_accepted_;
        if (child->tcp_ != nullptr) {
            tcp_pcb* pcb = child->tcp_;
            tcp_arg(pcb, nullptr);
            tcp_err(pcb, nullptr);
            child->tcp_ = nullptr;
            tcp_abort(pcb);
        }
        fail(*child, -ECONNABORTED);
        child->release(); // the app's reference it never took
        child = next;
    }
    s.state_.fetch_or(state::dead, std::memory_order_release);
    s.notify();
    detach(s);
}

void StackEngine::close_udp(Socket& s) {
    if (s.listener_rule_) {
        remove_udp_port_user(s.local_);
        s.listener_rule_ = false;
    }
    if (s.udp_ != nullptr) {
        udp_remove(s.udp_);
        s.udp_ = nullptr;
    }
    s.state_.fetch_or(state::dead, std::memory_order_release);
    s.notify();
    detach(s);
}

void StackEngine::send_datagrams(Socket& s) {
    if (s.udp_ == nullptr) {
        return;
    }
    bool moved = false;
    DatagramHeader h{};
    while (s.tx_.peek(&h, sizeof h) == sizeof h && s.tx_.available() >= sizeof h + h.len) {
        s.tx_.consume(sizeof h);
        pbuf* p = pbuf_alloc(PBUF_TRANSPORT, static_cast<u16_t>(h.len), PBUF_RAM);
        if (p == nullptr) {
            s.tx_.consume(h.len);
            stats_.drop_alloc_failed += 1;
            continue;
        }
        std::uint32_t offset = 0;
        for (pbuf* q = p; q != nullptr; q = q->next) {
            offset += s.tx_.read(q->payload, q->len);
        }
        ip_addr_t to;
        ip_addr_set_ip4_u32_val(to, h.addr);
        (void)udp_sendto(s.udp_, p, &to, ntohs(h.port));
        pbuf_free(p);
        moved = true;
    }
    if (moved) {
        s.notify();
    }
}

// --- lwIP callbacks ----------------------------------------------------------------------------------

void TcpCallbacks::attach_pcb(Socket& s, tcp_pcb* pcb) {
    s.tcp_ = pcb;
    // No Nagle: with lwIP's 250 ms delayed-ACK timer, Nagle stalls the tail of every odd-sized
    // write for up to 250 ms (measured: p99 of a 60 kB request/response went from 250 ms to
    // ~1 ms). Coalescing comes from the tx ring instead (whole ring contents per tcp_write).
    tcp_nagle_disable(pcb);
    tcp_arg(pcb, &s);
    tcp_recv(pcb, &TcpCallbacks::recv);
    tcp_sent(pcb, &TcpCallbacks::sent);
    tcp_err(pcb, &TcpCallbacks::error);
}

// Runs before lwIP sends the SYN-ACK: the connection's rule must exist before any of its packets
// can reach another queue. A full backlog drops the SYN silently (the peer retries, as with
// Linux's accept queue); the process's connection limit (tcp_conn_count) or a full flow table
// answers it with a reset, so the peer's connect() fails at once (ECONNREFUSED) instead of
// retrying SYNs for as long as the resource stays exhausted.
err_t TcpCallbacks::passive_open(u8_t id, tcp_pcb_listen* lpcb, tcp_pcb* cpcb) {
    StackEngine* engine = StackEngine::current();
    auto* listener = static_cast<Socket*>(lpcb->callback_arg);
    if (engine == nullptr || listener == nullptr ||
        (listener->app_flags_.load(std::memory_order_acquire) & app_flag::closed) != 0 ||
        listener->accept_pending_.load(std::memory_order_acquire) >= listener->backlog_) {
        return ERR_MEM;
    }
    auto refuse = [&] {
        tcp_rst(cpcb, 0, cpcb->rcv_nxt, &cpcb->local_ip, &cpcb->remote_ip, cpcb->local_port, cpcb->remote_port);
        return ERR_MEM;
    };
    if (!listener->stack_.reserve_tcp_socket()) {
        return refuse();
    }
    if (const int rc = engine->add_connection_rule(cpcb, cpcb->local_port); rc != 0) {
        listener->stack_.release_tcp_socket();
        return rc == -ENOSPC ? refuse() : ERR_MEM;
    }
    static_cast<ConnRule*>(tcp_ext_arg_get(cpcb, id))->holds_tcp_slot = true;
    return ERR_OK;
}

void TcpCallbacks::destroyed(u8_t /*id*/, void* data) {
    StackEngine* engine = StackEngine::current();
    auto* rule = static_cast<ConnRule*>(data);
    if (engine == nullptr || rule == nullptr) {
        return;
    }
    if (rule->holds_tcp_slot) {
        engine->stack_.release_tcp_socket();
    }
    engine->remove_connection_rule(rule->key, rule->hash);
    engine->arena_.free(rule);
}

err_t TcpCallbacks::accept(void* arg, tcp_pcb* pcb, err_t err) {
    StackEngine* engine = StackEngine::current();
    auto* listener = static_cast<Socket*>(arg);
    if (err != ERR_OK || pcb == nullptr || listener == nullptr || engine == nullptr) {
        return ERR_VAL;
    }
    auto* s = new (std::nothrow) Socket(listener->stack_, SocketType::tcp, listener->rx_.capacity());
    if (s == nullptr) {
        tcp_abort(pcb); // the destroyed callback gives the reservation back
        return ERR_ABRT;
    }
    // The passive open's reservation moves to the socket.
    if (auto* rule = static_cast<ConnRule*>(tcp_ext_arg_get(pcb, engine->ext_id_)); rule != nullptr && rule->holds_tcp_slot) {
        rule->holds_tcp_slot = false;
        s->holds_tcp_slot_ = true;
    }
    attach_pcb(*s, pcb);
    s->local_ = endpoint_of(pcb->local_ip, pcb->local_port);
    s->remote_ = endpoint_of(pcb->remote_ip, pcb->remote_port);
    s->state_.store(state::bound | state::connected, std::memory_order_release);
    engine->attach(*s);     // the stack's reference; refs_ starts at 1: the app's, taken by accept()
    s->listener_ = listener;
    listener->accept_pending_.fetch_add(1, std::memory_order_acq_rel);
    listener->accepted_.push(s);
    listener->notify();
    return ERR_OK;
}

err_t TcpCallbacks::recv(void* arg, tcp_pcb* /*pcb*/, pbuf* p, err_t err) {
    auto* s = static_cast<Socket*>(arg);
    StackEngine* engine = StackEngine::current();
    if (s == nullptr || engine == nullptr) {
        if (p != nullptr) {
            pbuf_free(p);
        }
        return ERR_OK;
    }
    if (p == nullptr) { // FIN: end of stream once the app has everything before it
        if (s->rx_backlog_ != nullptr) {
            s->fin_pending_ = true;
            return ERR_OK;
        }
        s->state_.fetch_or(state::eof, std::memory_order_release);
        s->notify();
        return ERR_OK;
    }
    if (err != ERR_OK) {
        pbuf_free(p);
        return ERR_OK;
    }
    engine->deliver_rx(*s, p);
    return ERR_OK;
}

err_t TcpCallbacks::sent(void* arg, tcp_pcb* /*pcb*/, u16_t /*len*/) {
    auto* s = static_cast<Socket*>(arg);
    StackEngine* engine = StackEngine::current();
    if (s != nullptr && engine != nullptr) {
        engine->flush_tx_ring(*s);
        engine->maybe_finish_close(*s);
    }
    return ERR_OK;
}

// The pcb is already freed.
void TcpCallbacks::error(void* arg, err_t err) {
    auto* s = static_cast<Socket*>(arg);
    StackEngine* engine = StackEngine::current();
    if (s == nullptr || engine == nullptr) {
        return;
    }
    s->tcp_ = nullptr;
    int code = errno_of(err);
    if ((s->state_.load() & state::connecting) != 0) {
        code = err == ERR_RST ? -ECONNREFUSED : err == ERR_ABRT ? -ETIMEDOUT : code;
    }
    engine->fail(*s, code);
}

err_t TcpCallbacks::connected(void* arg, tcp_pcb* /*pcb*/, err_t err) {
    auto* s = static_cast<Socket*>(arg);
    StackEngine* engine = StackEngine::current();
    if (s == nullptr || engine == nullptr) {
        return ERR_OK;
    }
    if (err != ERR_OK) {
        return ERR_OK; // lwIP reports failures through error()
    }
    s->state_.fetch_or(state::connected, std::memory_order_release);
    s->state_.fetch_and(~state::connecting, std::memory_order_release);
    engine->flush_tx_ring(*s);
    s->notify();
    return ERR_OK;
}

void TcpCallbacks::udp_recv(void* arg, udp_pcb* /*pcb*/, pbuf* p, const ip_addr_t* addr, u16_t port) {
    auto* s = static_cast<Socket*>(arg);
    if (s == nullptr || p == nullptr) {
        if (p != nullptr) {
            pbuf_free(p);
        }
        return;
    }
    const DatagramHeader h{p->tot_len, ip_2_ip4(addr)->addr, htons(port), 0};
    if (s->rx_.free_space() >= sizeof h + h.len) {
        s->rx_.copy_at(0, &h, sizeof h);
        std::uint32_t offset = sizeof h;
        for (pbuf* q = p; q != nullptr; q = q->next) {
            s->rx_.copy_at(offset, q->payload, q->len);
            offset += q->len;
        }
        s->rx_.publish(offset);
        s->notify();
    } // else: ring full, the datagram is dropped (as a full socket buffer does)
    pbuf_free(p);
}

} // namespace gazelle::stack
