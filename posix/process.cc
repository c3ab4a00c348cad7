// SPDX-License-Identifier: BSD-3-Clause
#include "posix/process.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fabric/mgr_client.h"
#include "posix/log.h"
#include "posix/real_calls.h"
#include "posix/socket.h"
#include "stack/runtime.h"

namespace gazelle::posix {

namespace {

using Clock = std::chrono::steady_clock;

// How long exit/exec wait for threads inside a FabricCall, for the peers of connections still
// open at exit to close their side, and for our last packets to be consumed, before the stacks stop.
constexpr auto k_quiesce_limit = std::chrono::milliseconds(200);
constexpr auto k_graceful_close_limit = std::chrono::milliseconds(300);
constexpr auto k_settle_at_exit = std::chrono::milliseconds(10);
// The dispatcher's backstop re-check of its poller (stop_dispatcher() interrupts the wait).
constexpr int k_dispatch_wait_ms = 50;
constexpr unsigned k_dispatch_batch = 64;
// Kernel interface addresses are re-read at most this often.
constexpr auto k_ifaddr_refresh = std::chrono::seconds(5);
// Longest wait for the stacks to start (EAL init as a secondary takes 50-300 ms here). EAL init
// cannot be interrupted: past this the attach is abandoned and the process goes on without the
// fabric rather than hang (seen when a process died holding a lock in DPDK's shared memory).
constexpr auto k_start_limit = std::chrono::seconds(10);

// Everything that is not plain data in Process (never destroyed: the process may still call us
// from atexit handlers and other libraries' destructors).
struct State {
    std::mutex config_mutex;
    bool config_loaded = false;
    std::optional<conf::LstackConfig> config;

    std::mutex attach_mutex;
    bool attach_failed = false;
    AttachOutcome failed_outcome = AttachOutcome::kernel;
    std::optional<fabric::Attachment> attachment;
    std::unique_ptr<stack::Runtime> runtime;
    std::atomic<unsigned> next_stack{0};

    std::unique_ptr<stack::Poller> poller;
    std::thread dispatcher;
    std::atomic<bool> dispatcher_stop{false};

    std::mutex ifaddr_mutex;
    std::vector<std::uint32_t> ifaddrs;
    Clock::time_point ifaddr_read{};
    bool ifaddr_valid = false;

    std::mutex shutdown_mutex;
    bool atexit_registered = false;
    char program[64] = {};
};

State& state() {
    static State* s = new State;
    return *s;
}

// --- thread registry for FabricCall ------------------------------------------------------------

struct ThreadRecord {
    std::atomic<std::uint32_t> depth{0};
    std::atomic<bool> live{true};
    ThreadRecord* next = nullptr;
};

std::mutex g_threads_mutex;
ThreadRecord* g_threads = nullptr;

struct ThreadSlot {
    ThreadRecord* record = nullptr;
    ~ThreadSlot() {
        if (record != nullptr) {
            record->depth.store(0, std::memory_order_release);
            record->live.store(false, std::memory_order_release);
        }
    }
};
thread_local ThreadSlot t_slot;
thread_local unsigned t_internal = 0;

ThreadRecord* this_thread_record() {
    if (t_slot.record == nullptr) [[unlikely]] {
        std::lock_guard lock(g_threads_mutex);
        for (ThreadRecord* r = g_threads; r != nullptr; r = r->next) { // reuse a dead thread's record
            if (!r->live.load(std::memory_order_acquire)) {
                r->live.store(true, std::memory_order_release);
                t_slot.record = r;
                return r;
            }
        }
        auto* r = new ThreadRecord;
        r->next = g_threads;
        g_threads = r;
        t_slot.record = r;
    }
    return t_slot.record;
}

// Waits until no other thread is inside a FabricCall (bounded). True if quiet.
bool wait_for_quiet_threads() {
    const ThreadRecord* self = t_slot.record;
    const auto deadline = Clock::now() + k_quiesce_limit;
    for (;;) {
        bool busy = false;
        {
            std::lock_guard lock(g_threads_mutex);
            for (ThreadRecord* r = g_threads; r != nullptr; r = r->next) {
                if (r != self && r->live.load(std::memory_order_acquire) && r->depth.load(std::memory_order_acquire) != 0) {
                    busy = true;
                }
            }
        }
        if (!busy) {
            return true;
        }
        if (Clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}

// --- helpers -------------------------------------------------------------------------------------

class SignalBlock {
public:
    SignalBlock() {
        sigset_t all;
        sigfillset(&all);
        (void)pthread_sigmask(SIG_SETMASK, &all, &saved_);
    }
    ~SignalBlock() { (void)pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
    SignalBlock(const SignalBlock&) = delete;
    SignalBlock& operator=(const SignalBlock&) = delete;

private:
    sigset_t saved_{};
};

std::string ipv4_text(std::uint32_t addr_be) {
    char text[INET_ADDRSTRLEN] = "?";
    in_addr a{};
    a.s_addr = addr_be;
    (void)inet_ntop(AF_INET, &a, text, sizeof text);
    return text;
}

stack::StackOptions stack_options_from(const conf::LstackConfig& c) {
    stack::StackOptions o;
    if (c.stack_interrupt) {
        o.idle_spin_us = c.idle_spin_us;
    } else if (c.low_power_mode) {
        o.idle_spin_us = c.idle_spin_us;
        o.max_sleep_us = 1000; // sleep briefly, never block for long
    } else {
        o.idle_spin_us = 1000000; // "busy polling": the longest spin the stack layer takes
    }
    o.max_tcp_connections = c.tcp_conn_count;
    o.connect_port_policy = c.connect_port_policy == conf::ConnectPortPolicy::other_queue
                                ? stack::StackOptions::ConnectPortPolicy::other_queue
                                : stack::StackOptions::ConnectPortPolicy::own_queue;
    return o;
}

extern "C" void gz_atfork_prepare() { process().before_fork(); }
extern "C" void gz_atfork_parent() { process().after_fork_parent(); }
extern "C" void gz_atfork_child() { process().after_fork_child(); }
extern "C" void gz_at_exit() { process().at_exit(); }

// Runtime::start() on a thread of its own, so that the caller can give up on it.
struct StartJob {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    bool abandoned = false;
    std::optional<Result<std::unique_ptr<stack::Runtime>>> result;
    std::optional<fabric::Attachment> attachment; // kept (never detached) if abandoned
};

void start_runtime(const std::shared_ptr<StartJob>& job, const stack::AttachPlan& plan, const stack::StackOptions& options) {
    auto started = stack::Runtime::start(plan, options);
    std::lock_guard lock(job->mutex);
    if (job->abandoned) {
        if (started) {
            (*started)->stop(); // too late: nobody uses it
        }
    } else {
        job->result.emplace(std::move(started));
    }
    job->done = true;
    job->done_cv.notify_all();
}

void dispatcher_main(stack::Poller* poller, std::atomic<bool>* stop) {
    (void)pthread_setname_np(pthread_self(), "gz-posix-ready");
    std::array<stack::Socket*, k_dispatch_batch> batch{};
    while (!stop->load(std::memory_order_acquire)) {
        const unsigned n = poller->wait(std::span<stack::Socket*>(batch.data(), batch.size()), k_dispatch_wait_ms);
        for (unsigned i = 0; i < n; ++i) {
            if (Ref<PosixSocket> p = lookup_stack_socket(batch[i])) {
                p->dispatch();
            }
        }
        sweep_closing_sockets();
    }
}

} // namespace

// --- FabricCall / InternalScope -----------------------------------------------------------------

FabricCall::FabricCall() {
    ThreadRecord* r = this_thread_record();
    r->depth.store(r->depth.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    // Dekker with the exit path: our depth is visible before we read fabric_gone_, or exit's
    // fabric_gone_ is visible to us.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    ok_ = !process().fabric_gone();
}

FabricCall::~FabricCall() {
    ThreadRecord* r = t_slot.record;
    r->depth.store(r->depth.load(std::memory_order_relaxed) - 1, std::memory_order_release);
}

bool internal_call() { return t_internal != 0; }
InternalScope::InternalScope() { ++t_internal; }
InternalScope::~InternalScope() { --t_internal; }

// --- Process -------------------------------------------------------------------------------------

Process& process() {
    static Process* p = new Process;
    return *p;
}

void Process::init_from_constructor() {
    (void)real();
    State& s = state();
    const char* name = program_invocation_short_name != nullptr ? program_invocation_short_name : "";
    std::strncpy(s.program, name, sizeof s.program - 1);
    const char* bind = std::getenv("GAZELLE_BIND_PROCNAME");
    if (bind != nullptr && bind[0] != '\0' && std::strcmp(bind, name) != 0) {
        // Also accept the executable's file name (argv[0] may be a symlink or a rewritten name).
        char exe[4096];
        const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        const char* base = "";
        if (n > 0) {
            exe[n] = '\0';
            const char* slash = std::strrchr(exe, '/');
            base = slash != nullptr ? slash + 1 : exe;
        }
        if (std::strcmp(bind, base) != 0) {
            enabled_.store(false, std::memory_order_relaxed);
            return; // inert: no config, no threads, no handlers, every call goes to the C library
        }
    }
    (void)pthread_atfork(gz_atfork_prepare, gz_atfork_parent, gz_atfork_child);
}

const conf::LstackConfig* Process::config() {
    State& s = state();
    std::lock_guard lock(s.config_mutex);
    if (!s.config_loaded) {
        s.config_loaded = true;
        InternalScope internal;
        const std::string path = conf::lstack_config_path();
        auto loaded = conf::load_lstack_config(path);
        if (!loaded) {
            log_always("cannot use lstack.conf: %s; this process uses kernel sockets", loaded.error().message.c_str());
        } else {
            s.config = std::move(*loaded);
            set_log_level(s.config->log_level);
            for (const auto& w : s.config->warnings) {
                GZ_LOG(notice, "lstack.conf: %s", w.message.c_str());
            }
            GZ_LOG(debug, "configuration from '%s'", path.c_str());
        }
    }
    return s.config ? &*s.config : nullptr;
}

bool Process::udp_enabled() {
    const conf::LstackConfig* c = config();
    return c != nullptr && c->udp_enable;
}

AttachOutcome Process::fail_attach(const std::string& message) {
    State& s = state();
    const conf::LstackConfig* c = s.config ? &*s.config : nullptr;
    const bool to_kernel = c == nullptr || c->attach_failure == conf::AttachFailure::kernel;
    log_always("cannot attach to the fabric: %s; %s", message.c_str(),
               to_kernel ? "this process uses kernel sockets (lstack.conf attach_failure = \"kernel\")"
                         : "its fabric sockets fail with ENETDOWN (lstack.conf attach_failure = \"error\")");
    s.attach_failed = true;
    s.failed_outcome = to_kernel ? AttachOutcome::kernel : AttachOutcome::error;
    return s.failed_outcome;
}

AttachOutcome Process::ensure_attached(std::uint32_t ipv4_hint) {
    if (attached_.load(std::memory_order_acquire)) {
        return AttachOutcome::attached;
    }
    if (!enabled() || fabric_gone()) {
        return AttachOutcome::kernel;
    }
    State& s = state();
    std::lock_guard lock(s.attach_mutex);
    if (attached_.load(std::memory_order_acquire)) {
        return AttachOutcome::attached;
    }
    if (s.attach_failed) {
        return s.failed_outcome;
    }
    if (fabric_gone()) {
        return AttachOutcome::kernel;
    }
    const conf::LstackConfig* c = config();
    if (c == nullptr) {
        s.attach_failed = true;
        s.failed_outcome = AttachOutcome::kernel;
        return AttachOutcome::kernel;
    }
    InternalScope internal;
    if (c->stack_thread_mode == conf::StackThreadMode::run_to_completion) {
        log_message(conf::LogLevel::warning, "stack_thread_mode = \"run-to-completion\" is not available yet "
                                             "(the stack layer runs its own threads); using \"run-to-wakeup\"");
    }
    fabric::AttachOptions options = fabric::attach_options_from(*c);
    if (options.selector == fabric::mgr_protocol::PortSelector::any && ipv4_hint != 0) {
        options.selector = fabric::mgr_protocol::PortSelector::by_ipv4;
        options.ipv4 = ipv4_hint;
    }
    options.program = s.program;
    const auto started = Clock::now();
    auto attachment = fabric::attach_to_manager(options);
    if (!attachment) {
        return fail_attach(attachment.error().message);
    }
    stack::AttachPlan plan = stack::plan_from_manager(*attachment);
    // Quiet EAL by default (it runs inside the application); lstack.conf dpdk_args come last in
    // the list and win.
    const std::size_t extra = c->dpdk_args.size();
    plan.eal_args.insert(plan.eal_args.end() - static_cast<std::ptrdiff_t>(extra), "--log-level=lib.*:warning");
    auto job = std::make_shared<StartJob>();
    {
        SignalBlock block; // the runtime's threads (EAL, stacks) inherit a mask with every signal blocked
        std::thread(start_runtime, job, plan, stack_options_from(*c)).detach();
    }
    std::unique_lock job_lock(job->mutex);
    if (!job->done_cv.wait_for(job_lock, k_start_limit, [&] { return job->done; })) {
        job->abandoned = true;
        // The manager keeps our queues until we exit (they are never polled): safe for the others.
        job->attachment.emplace(std::move(*attachment));
        job_lock.unlock();
        return fail_attach("the stacks did not start within " + std::to_string(k_start_limit.count()) +
                           " s (DPDK EAL init is stuck, e.g. on a lock in the fabric's shared memory held by a "
                           "process that died)");
    }
    Result<std::unique_ptr<stack::Runtime>> runtime = std::move(*job->result);
    job_lock.unlock();
    if (!runtime) {
        const std::string why = runtime.error().message;
        (void)attachment->detach();
        return fail_attach("Failed to start the stacks: " + why);
    }
    s.runtime = std::move(*runtime);
    ipv4_ = stack::stack_ipv4(s.runtime->stack(0));
    netmask_ = c->mask_addr ? c->mask_addr->value : htonl(0xffffff00u);
    has_gateway_ = c->gateway_addr.has_value();
    template_fd_ = real().socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    s.poller = std::make_unique<stack::Poller>();
    {
        SignalBlock block;
        s.dispatcher_stop.store(false);
        s.dispatcher = std::thread(dispatcher_main, s.poller.get(), &s.dispatcher_stop);
    }
    owner_pid_ = static_cast<int>(getpid());
    mgr_fd_ = attachment->fd();
    s.attachment.emplace(std::move(*attachment));
    {
        std::lock_guard shutdown_lock(s.shutdown_mutex);
        if (!s.atexit_registered) {
            s.atexit_registered = true;
            (void)std::atexit(gz_at_exit);
        }
    }
    attached_.store(true, std::memory_order_release);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    GZ_LOG(info, "attached to the fabric in %.1f ms: %s, %zu stack(s), queue %u first, lcore %u", ms,
           ipv4_text(ipv4_).c_str(), s.runtime->size(), static_cast<unsigned>(plan.stacks[0].slot),
           static_cast<unsigned>(plan.stacks[0].lcore));
    return AttachOutcome::attached;
}

std::size_t Process::nb_stacks() const { return state().runtime ? state().runtime->size() : 0; }

stack::Stack& Process::stack(std::size_t index) { return state().runtime->stack(index); }

stack::Stack& Process::next_stack() {
    State& s = state();
    const unsigned i = s.next_stack.fetch_add(1, std::memory_order_relaxed);
    return s.runtime->stack(i % s.runtime->size());
}

int Process::watch(stack::Socket* sock) { return state().poller->add(sock); }

bool Process::is_kernel_address(std::uint32_t ipv4) {
    const std::uint32_t host = ntohl(ipv4);
    if ((host >> 24) == 127) {
        return true;
    }
    if (ipv4 == 0) {
        return false;
    }
    State& s = state();
    std::lock_guard lock(s.ifaddr_mutex);
    const auto now = Clock::now();
    if (!s.ifaddr_valid || now - s.ifaddr_read > k_ifaddr_refresh) {
        InternalScope internal;
        s.ifaddrs.clear();
        ifaddrs* list = nullptr;
        if (getifaddrs(&list) == 0) {
            for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
                if (i->ifa_addr != nullptr && i->ifa_addr->sa_family == AF_INET) {
                    sockaddr_in sin{};
                    std::memcpy(&sin, i->ifa_addr, sizeof sin);
                    s.ifaddrs.push_back(sin.sin_addr.s_addr);
                }
            }
            freeifaddrs(list);
        }
        s.ifaddr_valid = true;
        s.ifaddr_read = now;
    }
    for (std::uint32_t a : s.ifaddrs) {
        if (a == ipv4) {
            return true;
        }
    }
    return false;
}

// --- dispatcher, shutdown --------------------------------------------------------------------------

void Process::stop_dispatcher() {
    State& s = state();
    if (s.dispatcher.joinable()) {
        s.dispatcher_stop.store(true, std::memory_order_release);
        s.poller->interrupt();
        s.dispatcher.join();
    }
}

void Process::shutdown_fabric(const char* why) {
    State& s = state();
    std::unique_lock lock(s.attach_mutex, std::try_to_lock);
    if (!lock.owns_lock()) {
        // Another thread is attaching right now: wait for it (bounded by its own deadlines).
        lock.lock();
    }
    if (!attached_.load(std::memory_order_acquire) || static_cast<int>(getpid()) != owner_pid_) {
        return;
    }
    fabric_gone_.store(true, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const bool quiet = wait_for_quiet_threads();
    if (!quiet) {
        GZ_LOG(warning, "%s: a thread is still inside a socket call after %lld ms; stopping the stacks anyway", why,
               static_cast<long long>(k_quiesce_limit.count()));
    }
    stop_dispatcher();
    // Connections still open: FIN after what they hold was sent, as the kernel does at exit.
    if (close_all_fabric_sockets(k_graceful_close_limit) != 0) {
        std::this_thread::sleep_for(k_settle_at_exit); // our last ACKs reach their peers
    }
    // The stacks stop first: their shutdown notifies the sockets it resets, and a socket that is
    // still a member of the Poller (one we did not close) must find it alive.
    s.runtime->stop();
    s.poller.reset();
    attached_.store(false, std::memory_order_release);
    if (s.attachment) {
        InternalScope internal;
        if (auto detached = s.attachment->detach(); !detached) {
            GZ_LOG(warning, "%s: failed to detach from gazelle-mgr: %s", why, detached.error().message.c_str());
        } else {
            GZ_LOG(info, "%s: released the fabric and detached from gazelle-mgr", why);
        }
    }
    const Counters& c = counters();
    std::uint64_t kernel = 0;
    for (const auto& k : c.kernel) {
        kernel += k.load();
    }
    GZ_LOG(info, "sockets: %llu on the fabric (%llu accepted), %llu on the kernel; options without effect %llu, "
                 "refused %llu",
           static_cast<unsigned long long>(c.fabric_sockets.load()), static_cast<unsigned long long>(c.accepted.load()),
           static_cast<unsigned long long>(kernel), static_cast<unsigned long long>(c.ignored_options.load()),
           static_cast<unsigned long long>(c.refused_options.load()));
    mgr_fd_ = -1;
}

void Process::at_exit() { shutdown_fabric("exit"); }

void Process::before_exec() { shutdown_fabric("exec"); }

void Process::before_fork() {
    // A child must not inherit a lock another thread holds (it would never be released there).
    State& s = state();
    s.attach_mutex.lock();
    s.config_mutex.lock();
    s.ifaddr_mutex.lock();
    g_threads_mutex.lock();
    lock_socket_pools();
}

void Process::after_fork_parent() {
    State& s = state();
    unlock_socket_pools();
    g_threads_mutex.unlock();
    s.ifaddr_mutex.unlock();
    s.config_mutex.unlock();
    s.attach_mutex.unlock();
}

void Process::after_fork_child() {
    // Only async-signal-safe work here. The locks taken in before_fork are ours to release.
    State& s = state();
    unlock_socket_pools();
    g_threads_mutex.unlock();
    s.ifaddr_mutex.unlock();
    s.config_mutex.unlock();
    s.attach_mutex.unlock();
    // Threads of the parent do not exist here.
    for (ThreadRecord* r = g_threads; r != nullptr; r = r->next) {
        if (r != t_slot.record) {
            r->live.store(false, std::memory_order_relaxed);
            r->depth.store(0, std::memory_order_relaxed);
        }
    }
    if (attached_.load(std::memory_order_relaxed)) {
        // The parent's stacks are the parent's: this process can neither use them nor attach
        // (EAL initialises once per address space). Its registration connection is the parent's too.
        fabric_gone_.store(true, std::memory_order_relaxed);
        attached_.store(false, std::memory_order_relaxed);
        s.attach_failed = true;
        s.failed_outcome = AttachOutcome::kernel;
        if (mgr_fd_ >= 0) {
            (void)syscall(SYS_close, mgr_fd_);
            mgr_fd_ = -1;
        }
        owner_pid_ = 0;
        fork_gen_.fetch_add(1, std::memory_order_relaxed);
    }
}

} // namespace gazelle::posix
