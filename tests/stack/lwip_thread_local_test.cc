// SPDX-License-Identifier: BSD-3-Clause
// Per-thread lwIP (stack/lwip/thread_local.list): two lwIP instances in two threads of one
// process, wired back to back, listen on the same port and connect from the same local port to
// each other. Each sees only its own pcbs, ARP table and timers, and every byte arrives where it
// belongs. With process-wide lwIP state the two would share pcb lists and corrupt each other.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"
}

#include "stack/internal/arena.h"

namespace {

using gazelle::stack::detail::Arena;
using gazelle::stack::detail::HeapChunks;

constexpr u16_t k_port = 7000;       // both instances listen here
constexpr u16_t k_local_port = 40000; // and both connect from here

// The wire between the two instances: frames queued for node 0 and node 1.
struct Wire {
    std::mutex mutex;
    std::deque<std::vector<std::uint8_t>> to[2];
};

struct Node {
    int index = 0;
    Wire* wire = nullptr;
    netif nif{};
    std::string name;
    std::string server_received; // what the peer's client sent to our listener
    std::string client_received; // what our client got back (echo)
    std::string sent;
    bool connected = false;
    unsigned active = 0;
    unsigned listening = 0;
    unsigned arp_entries = 0;
    std::uint64_t tcp_ticks_seen = 0;
};

err_t linkoutput(netif* nif, pbuf* p) {
    auto* node = static_cast<Node*>(nif->state);
    std::vector<std::uint8_t> frame(p->tot_len);
    pbuf_copy_partial(p, frame.data(), p->tot_len, 0);
    std::lock_guard lock(node->wire->mutex);
    node->wire->to[1 - node->index].push_back(std::move(frame));
    return ERR_OK;
}

err_t setup(netif* nif) {
    nif->output = etharp_output;
    nif->linkoutput = linkoutput;
    nif->mtu = 1500;
    nif->hwaddr_len = 6;
    nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_LINK_UP;
    return ERR_OK;
}

err_t server_recv(void* arg, tcp_pcb* pcb, pbuf* p, err_t) {
    auto* node = static_cast<Node*>(arg);
    if (p == nullptr) {
        tcp_close(pcb);
        return ERR_OK;
    }
    std::string data(p->tot_len, '\0');
    pbuf_copy_partial(p, data.data(), p->tot_len, 0);
    node->server_received += data;
    tcp_recved(pcb, p->tot_len);
    tcp_write(pcb, data.data(), static_cast<u16_t>(data.size()), TCP_WRITE_FLAG_COPY); // echo
    tcp_output(pcb);
    pbuf_free(p);
    return ERR_OK;
}

err_t server_accept(void* arg, tcp_pcb* pcb, err_t) {
    tcp_arg(pcb, arg);
    tcp_recv(pcb, server_recv);
    return ERR_OK;
}

err_t client_recv(void* arg, tcp_pcb* pcb, pbuf* p, err_t) {
    auto* node = static_cast<Node*>(arg);
    if (p == nullptr) {
        return ERR_OK;
    }
    std::string data(p->tot_len, '\0');
    pbuf_copy_partial(p, data.data(), p->tot_len, 0);
    node->client_received += data;
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

err_t client_connected(void* arg, tcp_pcb* pcb, err_t) {
    auto* node = static_cast<Node*>(arg);
    node->connected = true;
    node->sent = "hello from " + node->name + std::string(3000, static_cast<char>('a' + node->index));
    tcp_write(pcb, node->sent.data(), static_cast<u16_t>(node->sent.size()), TCP_WRITE_FLAG_COPY);
    tcp_output(pcb);
    return ERR_OK;
}

void run_node(Node& node, std::atomic<int>& ready, std::atomic<int>& done) {
    HeapChunks heap;
    Arena arena(heap, 1u << 20, 16u << 20);
    gazelle::stack::detail::set_thread_arena(&arena);
    lwip_init();
    ip4_addr_t ip;
    ip4_addr_t peer;
    ip4_addr_t mask;
    IP4_ADDR(&ip, 198, 18, 0, static_cast<u8_t>(1 + node.index));
    IP4_ADDR(&peer, 198, 18, 0, static_cast<u8_t>(2 - node.index));
    IP4_ADDR(&mask, 255, 255, 255, 0);
    const std::uint8_t mac[6] = {0x02, 0, 0, 0, 0, static_cast<std::uint8_t>(0x10 + node.index)};
    std::memcpy(node.nif.hwaddr, mac, 6);
    netif_add(&node.nif, &ip, &mask, IP4_ADDR_ANY4, &node, setup, ethernet_input);
    netif_set_default(&node.nif);
    netif_set_up(&node.nif);

    tcp_pcb* lpcb = tcp_new();
    tcp_bind(lpcb, IP4_ADDR_ANY, k_port);
    lpcb = tcp_listen(lpcb);
    tcp_arg(lpcb, &node);
    tcp_accept(lpcb, server_accept);

    // Both threads reach this point before either sends: the instances start from the same state.
    ready.fetch_add(1);
    while (ready.load() < 2) {
        std::this_thread::yield();
    }
    tcp_pcb* client = tcp_new();
    tcp_arg(client, &node);
    tcp_recv(client, client_recv);
    EXPECT_EQ(tcp_bind(client, IP4_ADDR_ANY, k_local_port), ERR_OK) << node.name; // same port in both
    ip_addr_t to;
    ip_addr_copy_from_ip4(to, peer);
    EXPECT_EQ(tcp_connect(client, &to, k_port, client_connected), ERR_OK);

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool finished = false;
    // Keep serving the wire until both are finished, then look at the state before tearing down.
    while (done.load() < 2 && std::chrono::steady_clock::now() < deadline) {
        std::deque<std::vector<std::uint8_t>> frames;
        {
            std::lock_guard lock(node.wire->mutex);
            frames.swap(node.wire->to[node.index]);
        }
        for (auto& f : frames) {
            pbuf* p = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(f.size()), PBUF_RAM);
            ASSERT_NE(p, nullptr);
            pbuf_take(p, f.data(), static_cast<u16_t>(f.size()));
            if (node.nif.input(p, &node.nif) != ERR_OK) {
                pbuf_free(p);
            }
        }
        sys_check_timeouts();
        if (!finished && !node.sent.empty() && node.client_received.size() >= node.sent.size() &&
            node.server_received.size() >= node.sent.size()) {
            finished = true;
            done.fetch_add(1);
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    // What this thread's lwIP holds: only its own pcbs.
    for (tcp_pcb* pcb = tcp_active_pcbs; pcb != nullptr; pcb = pcb->next) {
        ++node.active;
    }
    for (tcp_pcb_listen* pcb = tcp_listen_pcbs.listen_pcbs; pcb != nullptr; pcb = pcb->next) {
        ++node.listening;
    }
    for (size_t i = 0; i < ARP_TABLE_SIZE; ++i) {
        ip4_addr_t* entry_ip = nullptr;
        netif* entry_netif = nullptr;
        eth_addr* entry_mac = nullptr;
        if (etharp_get_entry(i, &entry_ip, &entry_netif, &entry_mac) == 1) {
            ++node.arp_entries;
        }
    }
    node.tcp_ticks_seen = tcp_ticks;
    done.fetch_add(1);
    while (done.load() < 4 && std::chrono::steady_clock::now() < deadline + std::chrono::seconds(1)) {
        std::this_thread::yield();
    }
    tcp_abort(client);
    while (tcp_active_pcbs != nullptr) {
        tcp_abort(tcp_active_pcbs);
    }
    tcp_close(lpcb);
    netif_remove(&node.nif);
    gazelle::stack::detail::set_thread_arena(nullptr);
}

TEST(LwipThreadLocal, TwoInstancesInTwoThreadsDoNotInterfere) {
    Wire wire;
    Node nodes[2];
    std::atomic<int> ready{0};
    std::atomic<int> done{0};
    for (int i = 0; i < 2; ++i) {
        nodes[i].index = i;
        nodes[i].wire = &wire;
        nodes[i].name = i == 0 ? "A" : "B";
    }
    std::thread a(run_node, std::ref(nodes[0]), std::ref(ready), std::ref(done));
    std::thread b(run_node, std::ref(nodes[1]), std::ref(ready), std::ref(done));
    a.join();
    b.join();
    for (int i = 0; i < 2; ++i) {
        const Node& n = nodes[i];
        const Node& other = nodes[1 - i];
        SCOPED_TRACE(n.name);
        EXPECT_TRUE(n.connected);
        EXPECT_EQ(n.client_received, n.sent);        // our echo came back to us
        EXPECT_EQ(n.server_received, other.sent);    // our listener got the other's bytes only
        EXPECT_EQ(n.listening, 1u);                  // one listener each, on the same port
        EXPECT_EQ(n.active, 2u);                     // our client + the connection we accepted
        EXPECT_EQ(n.arp_entries, 1u);                // the peer only
    }
}

} // namespace
