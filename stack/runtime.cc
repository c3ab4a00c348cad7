// SPDX-License-Identifier: BSD-3-Clause
// Attaching a process to the fabric and running its stack threads on their EAL lcores.
#include "stack/runtime.h"

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <pthread.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "fabric/eal.h"
#include "fabric/fabric.h"
#include "fabric/port_io.h"
#include "stack/internal/engine.h"
#include "stack/internal/stack.h"

namespace gazelle::stack {

std::vector<std::string> secondary_eal_args(const std::string& file_prefix, const std::string& huge_dir,
                                            const std::vector<StackAssignment>& stacks,
                                            const std::vector<std::string>& extra) {
    std::string lcores;
    for (const StackAssignment& a : stacks) {
        lcores += (lcores.empty() ? "" : ",") + std::to_string(a.lcore) + "@" + std::to_string(a.cpu);
    }
    std::vector<std::string> args{"--proc-type=secondary", "--file-prefix=" + file_prefix, "--no-pci",
                                  "--lcores=" + lcores, "--no-telemetry"};
    if (!huge_dir.empty()) {
        args.push_back("--huge-dir=" + huge_dir);
    }
    if (!stacks.empty()) {
        args.push_back("--main-lcore=" + std::to_string(stacks.front().lcore));
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

AttachPlan plan_from_manager(const fabric::Attachment& attachment) {
    AttachPlan plan;
    plan.eal_args = attachment.eal_args();
    for (unsigned i = 0; i < attachment.nb_queues(); ++i) {
        plan.stacks.push_back({attachment.slots()[i], attachment.lcores()[i], attachment.cpus()[i]});
    }
    return plan;
}

struct Runtime::Impl {
    AttachPlan plan;
    StackOptions options;
    std::vector<std::unique_ptr<Stack>> stacks;
    std::atomic<unsigned> tcp_sockets{0}; // of every stack (StackOptions::max_tcp_connections)
    std::unique_ptr<fabric::Fabric> fabric;
    std::vector<fabric::PortIoPtr> port_ios; // by registry port index
    std::thread main;

    std::mutex mutex;
    std::condition_variable changed;
    unsigned initialised = 0;
    bool main_done = false;
    std::optional<Error> error;

    struct Launch {
        Impl* impl;
        std::size_t index;
    };
    std::vector<Launch> launches;

    void report(const Result<void>& result) {
        std::lock_guard lock(mutex);
        if (!result && !error) {
            error = result.error();
        }
        ++initialised;
        changed.notify_all();
    }
    void fail(Error e) {
        std::lock_guard lock(mutex);
        if (!error) {
            error = std::move(e);
        }
        changed.notify_all();
    }
    void request_stop() {
        for (auto& s : stacks) {
            s->stop_.store(true, std::memory_order_seq_cst); // against the stack's sleep re-check (Dekker)
            if (s->doorbell_ready_.load(std::memory_order_acquire)) {
                s->doorbell_.ring_doorbell();
            }
        }
    }

    // One stack thread, from init to shutdown. Runs on its EAL lcore.
    void run_stack(std::size_t index) {
        Stack& stack = *stacks[index];
        name_stack_thread(stack.slot_);
        const unsigned port = fabric->registry().queue(stack.slot_).port;
        auto engine = std::make_unique<StackEngine>(stack, *fabric, *port_ios[port]);
        Result<void> init = engine->init();
        report(init);
        if (init) {
            engine->run();
        }
        engine->shutdown();
    }

    // "gz-stack-<queue>" in top -H, ps -L and /proc/<pid>/task/*/comm (EAL named it rte-worker-<lcore>
    // or, on the main lcore, after the process). Never on the process's main thread: its name is
    // the process's (pgrep, ps).
    static void name_stack_thread(fabric::QueueSlot slot) {
        if (gettid() == getpid()) {
            return;
        }
        const std::string name = "gz-stack-" + std::to_string(slot);
        (void)pthread_setname_np(pthread_self(), name.c_str());
    }

    static int worker_entry(void* arg) {
        auto* launch = static_cast<Launch*>(arg);
        launch->impl->run_stack(launch->index);
        return 0;
    }

    // The runtime's own thread: EAL's main lcore, and the stack assigned to it.
    void run_main() {
        auto done = [this] {
            std::lock_guard lock(mutex);
            main_done = true;
            changed.notify_all();
        };
        if (auto eal = fabric::eal_init("gazelle-stack", plan.eal_args); !eal) {
            fail(eal.error());
            done();
            return;
        }
        prepare_and_run();
        fabric.reset();
        port_ios.clear();
        (void)rte_eal_cleanup();
        done();
    }

    void prepare_and_run() {
        std::size_t on_main = plan.stacks.size();
        for (std::size_t i = 0; i < plan.stacks.size(); ++i) {
            if (plan.stacks[i].lcore == rte_get_main_lcore()) {
                on_main = i;
            }
        }
        if (on_main == plan.stacks.size()) {
            fail(make_error(EINVAL, "No stack of the plan runs on EAL's main lcore " +
                                        std::to_string(rte_get_main_lcore()) + " (check --lcores / --main-lcore)"));
            return;
        }
        auto attached = fabric::Fabric::attach();
        if (!attached) {
            fail(attached.error());
            return;
        }
        fabric = std::move(*attached);
        fabric::Registry& registry = fabric->registry();
        port_ios.resize(registry.layout().nb_ports);
        for (std::size_t i = 0; i < plan.stacks.size(); ++i) {
            const StackAssignment& a = plan.stacks[i];
            if (a.slot >= registry.nb_slots()) {
                fail(make_error(EINVAL, "Queue slot " + std::to_string(a.slot) + " does not exist"));
                return;
            }
            if (i != on_main && (!rte_lcore_is_enabled(a.lcore) || a.lcore == rte_get_main_lcore())) {
                fail(make_error(EINVAL, "lcore " + std::to_string(a.lcore) + " of stack " + std::to_string(i) +
                                            " is not an EAL worker lcore of this process (--lcores)"));
                return;
            }
            const unsigned port = registry.queue(a.slot).port;
            if (!port_ios[port]) {
                auto io = fabric::make_port_io(registry, a.slot);
                if (!io) {
                    fail(io.error());
                    return;
                }
                port_ios[port] = std::move(*io);
            }
        }
        launches.resize(plan.stacks.size());
        for (std::size_t i = 0; i < plan.stacks.size(); ++i) {
            if (i == on_main) {
                continue;
            }
            launches[i] = Launch{this, i};
            if (const int rc = rte_eal_remote_launch(&Impl::worker_entry, &launches[i], plan.stacks[i].lcore); rc != 0) {
                fail(make_error(-rc, "Failed to launch stack " + std::to_string(i) + " on lcore " +
                                         std::to_string(plan.stacks[i].lcore)));
                request_stop();
                rte_eal_mp_wait_lcore();
                return;
            }
        }
        run_stack(on_main);
        rte_eal_mp_wait_lcore();
    }
};

Runtime::Runtime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Runtime>> Runtime::start(const AttachPlan& plan, const StackOptions& options) {
    if (plan.stacks.empty() || plan.stacks.size() > fabric::k_max_queues) {
        return make_error(EINVAL, "An attach plan needs 1.." + std::to_string(fabric::k_max_queues) + " stacks");
    }
    if (options.idle_spin_us > 1000000 || options.ethdev_sleep_min_us == 0 ||
        options.ethdev_sleep_min_us > options.ethdev_sleep_max_us || options.ephemeral_first > options.ephemeral_last ||
        options.arena_chunk_bytes == 0 || options.arena_max_bytes < options.arena_chunk_bytes) {
        return make_error(EINVAL, "Invalid stack options");
    }
    auto impl = std::make_unique<Impl>();
    impl->plan = plan;
    impl->options = options;
    for (const StackAssignment& a : plan.stacks) {
        impl->stacks.push_back(std::make_unique<Stack>(a.slot, a.lcore, options, impl->tcp_sockets));
    }
    Impl* raw = impl.get();
    raw->main = std::thread([raw] { raw->run_main(); });
    std::unique_lock lock(raw->mutex);
    raw->changed.wait(lock, [raw] { return raw->error || raw->main_done || raw->initialised == raw->stacks.size(); });
    if (raw->error || raw->main_done) {
        Error e = raw->error.value_or(make_error(EIO, "The stack runtime ended during start-up"));
        lock.unlock();
        raw->request_stop();
        raw->main.join();
        return e;
    }
    lock.unlock();
    return std::unique_ptr<Runtime>(new Runtime(std::move(impl)));
}

Runtime::~Runtime() { stop(); }

void Runtime::stop() {
    if (!impl_->main.joinable()) {
        return;
    }
    impl_->request_stop();
    impl_->main.join();
}

std::size_t Runtime::size() const { return impl_->stacks.size(); }
Stack& Runtime::stack(std::size_t index) { return *impl_->stacks.at(index); }

fabric::QueueSlot stack_slot(const Stack& stack) { return stack.slot_; }
std::uint32_t stack_ipv4(const Stack& stack) { return stack.ipv4_; }
std::uint16_t stack_lcore(const Stack& stack) { return stack.lcore_; }

} // namespace gazelle::stack
