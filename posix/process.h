// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// The process's relation to the fabric: whether liblstack.so is active in it at all
// (GAZELLE_BIND_PROCNAME), its lstack.conf, the attachment to gazelle-mgr and the stack runtime,
// the readiness dispatcher, and what fork, exec and exit do to them.
//
// Attach is lazy: nothing happens before the first AF_INET socket() (config is read then), and
// the process attaches only when a socket first needs the network (doc/user-guide.md
// "Attaching"). A failed attach prints one message on stderr and then either keeps the whole
// process on kernel sockets or makes fabric calls fail with ENETDOWN (lstack.conf
// attach_failure). Every step has a deadline (the manager's reply, EAL init): no hang.
//
// The readiness dispatcher is one thread of ours, started at attach: it sleeps on a stack Poller
// holding every stack socket of the process and forwards each readiness change to the socket's
// blocked callers and watchers (epoll sets, poll/select callers). All our threads block every
// signal, so the application's signals reach the application's threads only.
//
// fork: a child of a process that has not attached yet inherits its sockets like any child, and
// attaches on its own when it uses them (a forked worker gets its own queues; listeners are
// shared through the fabric's listener sets). A child of an attached process cannot attach (EAL
// runs once per address space): it runs on kernel sockets, and the stack sockets it inherited
// are orphans. exec and exit release everything and detach cleanly from the manager.
//
// Threading: any thread.

#include <atomic>
#include <cstdint>
#include <optional>

#include "conf/lstack_config.h"
#include "stack/api.h"

namespace gazelle::posix {

enum class AttachOutcome {
    attached, // the stack runtime runs: use the fabric
    kernel,   // no fabric for this process: use the kernel socket
    error,    // no fabric and attach_failure = error: fail with ENETDOWN
};

class Process {
public:
    // Decided by the library constructor (GAZELLE_BIND_PROCNAME); false: liblstack.so is inert.
    bool enabled() const { return enabled_.load(std::memory_order_relaxed); }

    // lstack.conf, loaded on first call. nullptr if it could not be loaded (then the process
    // stays on kernel sockets, after one message).
    const conf::LstackConfig* config();

    // Attaches if not yet attached. ipv4_hint (network order, 0: none) selects the port when
    // lstack.conf does not (the address a socket binds to).
    AttachOutcome ensure_attached(std::uint32_t ipv4_hint);
    bool attached() const { return attached_.load(std::memory_order_acquire); }
    // True in the child of an attached process, and after the runtime stopped (exec, exit).
    bool fabric_gone() const { return fabric_gone_.load(std::memory_order_acquire); }

    // Attached only.
    std::size_t nb_stacks() const;
    stack::Stack& stack(std::size_t index);
    stack::Stack& next_stack(); // round robin for new connections
    std::uint32_t fabric_ipv4() const { return ipv4_; }
    std::uint32_t fabric_netmask() const { return netmask_; }
    bool has_gateway() const { return has_gateway_; }
    bool udp_enabled();

    // Makes s a member of the dispatcher's Poller. 0 or -errno.
    int watch(stack::Socket* s);

    // A kernel socket to dup() for the fd of an accepted connection.
    int template_fd() const { return template_fd_; }

    // Current fork generation (sockets of an older one are orphans once the fabric is gone).
    std::uint32_t fork_gen() const { return fork_gen_.load(std::memory_order_acquire); }

    // 127.0.0.0/8, 0.0.0.0 excluded, or an address of one of the host's kernel interfaces.
    bool is_kernel_address(std::uint32_t ipv4);

    // fork/exec/exit hooks (process.cc installs them).
    void before_fork();
    void after_fork_parent();
    void after_fork_child();
    void before_exec();
    void at_exit();

    void init_from_constructor();

private:
    void start_dispatcher();
    void stop_dispatcher();
    void shutdown_fabric(const char* why);
    AttachOutcome fail_attach(const std::string& message);

    std::atomic<bool> enabled_{true};
    std::atomic<bool> attached_{false};
    std::atomic<bool> fabric_gone_{false};
    std::atomic<std::uint32_t> fork_gen_{0};
    std::uint32_t ipv4_ = 0;
    std::uint32_t netmask_ = 0;
    bool has_gateway_ = false;
    int template_fd_ = -1;
    int owner_pid_ = 0;
    int mgr_fd_ = -1;
};

Process& process();

// Brackets every use of stack objects by an app thread. Exit and exec wait (bounded) until no
// thread is inside one before they stop the stacks, and refuse new ones afterwards, so a thread
// still running while another calls exit() never touches a freed stack socket.
class FabricCall {
public:
    FabricCall();
    ~FabricCall();
    FabricCall(const FabricCall&) = delete;
    FabricCall& operator=(const FabricCall&) = delete;
    // False: the fabric is gone (exit, exec, or a child of an attached process).
    explicit operator bool() const { return ok_; }

private:
    bool ok_;
};

// True while the calling thread runs liblstack.so's own machinery (attach, interface lookup):
// sockets it makes are ours, not the application's, and are neither counted nor logged.
bool internal_call();
class InternalScope {
public:
    InternalScope();
    ~InternalScope();
    InternalScope(const InternalScope&) = delete;
    InternalScope& operator=(const InternalScope&) = delete;
};

} // namespace gazelle::posix
