// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Runtime: the stacks of one process on the fabric, and how a process attaches.
//
// Attach flow (doc/stack.md "Attaching"):
//   (a) get an AttachPlan: which queue slots the process owns, the EAL lcore of each stack thread,
//       and the EAL arguments: from gazelle-mgr (fabric::attach_to_manager() + plan_from_manager()),
//       or in tests from a test primary that claimed the queues for this pid (secondary_eal_args());
//       the source is the caller's business, the Runtime only takes a plan;
//   (b) Runtime::start() initialises EAL as a secondary with the plan's arguments, from a thread
//       of its own that becomes EAL's main lcore and runs stack 0 (no app thread is pinned or made
//       an EAL thread);
//   (c) Fabric::attach();
//   (d) one stack per slot: stack 0 on the main lcore, the others on their worker lcores
//       (rte_eal_remote_launch). start() returns once every stack runs (or the first error).
// stop() (or the destructor) ends every stack cleanly: connections are reset, rules, listeners
// and memp pools released; the queues stay claimed until the manager reclaims them.
//
// Threading: start/stop/destructor from one app thread; stack(i) from any thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "conf/result.h"
#include "fabric/mgr_client.h"
#include "fabric/types.h"
#include "stack/api.h"

namespace gazelle::stack {

struct StackAssignment {
    fabric::QueueSlot slot = fabric::k_no_queue;
    std::uint16_t lcore = 0; // EAL lcore id, unique fabric-wide
    std::uint16_t cpu = 0;   // CPU it is pinned to (used to build EAL arguments)
};

struct AttachPlan {
    // Complete EAL arguments for a secondary (see secondary_eal_args()).
    std::vector<std::string> eal_args;
    // Stack i runs on stacks[i].lcore. The one on EAL's main lcore runs on the runtime's own
    // thread; every other lcore must be an EAL worker lcore of these arguments.
    std::vector<StackAssignment> stacks;
};

// The plan gazelle-mgr granted (fabric/mgr_client.h: attach_to_manager()). The caller keeps the
// Attachment (its connection) open for as long as the stacks run, and detach()es after stop().
AttachPlan plan_from_manager(const fabric::Attachment& attachment);

// EAL arguments of a secondary owning `stacks`: --proc-type=secondary, --file-prefix, --huge-dir,
// --no-pci, --lcores=<lcore>@<cpu>,..., --main-lcore=<stacks[0].lcore>, then `extra`.
std::vector<std::string> secondary_eal_args(const std::string& file_prefix, const std::string& huge_dir,
                                            const std::vector<StackAssignment>& stacks,
                                            const std::vector<std::string>& extra = {});

struct StackOptions {
    // Busy-poll this long after the last work before sleeping on the doorbells (each empty poll
    // in that window yields the CPU, so co-located busy stacks share it).
    unsigned idle_spin_us = 200;
    // Longest single sleep (lwIP's timers wake the stack earlier when they are due; packets and
    // app requests ring a doorbell). Each wake-up costs a context switch, 70-300 us of CPU in
    // these VMs: 10 a second is what an idle stack pays for this backstop.
    unsigned max_sleep_us = 100000;
    // Ports without a doorbell (ethdev: the NIC queue cannot wake us): the sleep starts at
    // ethdev_sleep_min_us and doubles up to ethdev_sleep_max_us while nothing arrives.
    unsigned ethdev_sleep_min_us = 50;
    unsigned ethdev_sleep_max_us = 10000;
    // lwIP arena (hugepages, registered to the stack's owner tag): chunk size and limit.
    std::size_t arena_chunk_bytes = 4u << 20;
    std::size_t arena_max_bytes = 256u << 20;
    // TCP sockets (listeners, connections, accepted ones not yet taken) the whole process may
    // hold at once, over all its stacks; 0: no limit (lstack.conf tcp_conn_count). At the limit a
    // new socket fails with -ENOBUFS and a connection request is answered with a reset; close()
    // frees a place at once.
    unsigned max_tcp_connections = 0;
    // Local ports connect() chooses from.
    std::uint16_t ephemeral_first = 49152;
    std::uint16_t ephemeral_last = 65535;
    // Which queue the replies of a connect() from an unbound socket hash onto (software RSS).
    // other_queue exists for benchmarks only: it makes every reply land on another queue of the
    // port, whose stack forwards it, so the mis-steering penalty of a whole connection can be
    // measured (lstack.conf connect_port_policy). With no other queue in the RETA: own_queue.
    enum class ConnectPortPolicy { own_queue, other_queue };
    ConnectPortPolicy connect_port_policy = ConnectPortPolicy::own_queue;
    // Software checksums on user-veth ports (frames never leave memory there): false skips
    // generating and checking them; every stack of the fabric must agree.
    bool user_veth_checksums = true;
};

class Runtime {
public:
    // Errors: the EAL's (EINVAL, ...), Fabric::attach's (ENOENT: no primary/manager), EPERM (a
    // slot of the plan is not claimed for this pid and lcore), ENOMEM (arena), EINVAL (bad plan).
    static Result<std::unique_ptr<Runtime>> start(const AttachPlan& plan, const StackOptions& options = {});
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    std::size_t size() const;
    Stack& stack(std::size_t index);
    // Stops every stack (idempotent). Sockets must not be used afterwards (calls return -ESHUTDOWN).
    void stop();

    struct Impl;

private:
    explicit Runtime(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Identity of a stack, for apps and tests.
fabric::QueueSlot stack_slot(const Stack& stack);
std::uint32_t stack_ipv4(const Stack& stack); // network byte order
std::uint16_t stack_lcore(const Stack& stack);

} // namespace gazelle::stack
