// SPDX-License-Identifier: BSD-3-Clause
#pragma once

// Support for the D-Bus tests (tests/mgr/bus_*, tests/tools/gazellectl_*): a private dbus-daemon,
// commands run with their output captured (optionally as user nobody), an sd-bus client with
// bounded waits, a signal recorder, and a real gazelle-mgr on a temporary configuration.
//
// Header-only so tests of other folders (tests/tools) can use it without a library.
// Every wait is bounded; destructors kill what is still running.

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "tests/support/test_support.h"

extern char** environ;

namespace gazelle::test {

inline constexpr char k_gz_name[] = "org.openeuler.Gazelle1";
inline constexpr char k_gz_path[] = "/org/openeuler/Gazelle1";
inline constexpr char k_gz_iface[] = "org.openeuler.Gazelle1.Manager";
inline constexpr uid_t k_nobody = 65534;

inline double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// --- commands ----------------------------------------------------------------------------------

struct CommandResult {
    int exit_code = -1; // -1: killed by a signal or timed out
    bool timed_out = false;
    std::string out;
    std::string err;
    double ms = 0; // wall time
};

// Runs argv (argv[0] is a path), capturing stdout and stderr; SIGKILLed after `timeout`.
inline CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 20s) {
    CommandResult result;
    const auto t0 = std::chrono::steady_clock::now();
    int out[2];
    int err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        result.err = std::string("pipe: ") + std::strerror(errno);
        return result;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> args = argv;
    std::vector<char*> cargv;
    for (auto& a : args) {
        cargv.push_back(a.data());
    }
    cargv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
    if (rc != 0) {
        close(out[0]);
        close(err[0]);
        result.err = std::string("spawn ") + argv[0] + ": " + std::strerror(rc);
        return result;
    }
    const auto deadline = t0 + timeout;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_fds = 2;
    while (open_fds > 0) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            result.timed_out = true;
            ::kill(pid, SIGKILL);
            break;
        }
        const int n = poll(fds, 2, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                char chunk[8192];
                const ssize_t got = read(fds[i].fd, chunk, sizeof chunk);
                if (got <= 0) {
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    --open_fds;
                } else {
                    sinks[i]->append(chunk, static_cast<std::size_t>(got));
                }
            }
        }
    }
    for (auto& fd : fds) {
        if (fd.fd >= 0) {
            close(fd.fd);
        }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.ms = ms_since(t0);
    return result;
}

// The same command as user nobody without supplementary groups (setpriv from util-linux).
inline std::vector<std::string> as_nobody(std::vector<std::string> argv) {
    std::vector<std::string> out = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

inline std::vector<std::string> busctl(const std::string& address, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/busctl", "--address=" + address};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

// busctl call org.openeuler.Gazelle1 /org/openeuler/Gazelle1 org.openeuler.Gazelle1.Manager MEMBER [SIG ARGS...]
inline std::vector<std::string> busctl_call(const std::string& address, const std::string& member,
                                            std::vector<std::string> args = {}) {
    std::vector<std::string> a = {"--timeout=10", "call", k_gz_name, k_gz_path, k_gz_iface, member};
    a.insert(a.end(), args.begin(), args.end());
    return busctl(address, a);
}

// --- a private bus -------------------------------------------------------------------------------

enum class BusPolicy {
    permissive, // anyone may own any name and send anything (eavesdropping allowed)
    project,    // system-bus defaults (deny by default) plus conf/org.openeuler.Gazelle1.conf
};

class DbusDaemon {
public:
    explicit DbusDaemon(BusPolicy policy = BusPolicy::permissive) {
        if (dir_.path().empty()) {
            error_ = "no temporary directory";
            return;
        }
        // Non-root clients (setpriv) must reach the socket.
        chmod(dir_.path().c_str(), 0755);
        const std::string socket = dir_.path() + "/bus";
        std::string policy_xml;
        if (policy == BusPolicy::permissive) {
            policy_xml = R"(  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
)";
        } else {
            // What /usr/share/dbus-1/system.conf says, then the project's policy file.
            policy_xml = R"(  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>)" + source_path("conf/org.openeuler.Gazelle1.conf") +
                         "</include>\n";
        }
        const std::string config =
            dir_.write("bus.conf", R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path=)" + socket + R"(</listen>
  <auth>EXTERNAL</auth>
)" + policy_xml + R"(</busconfig>
)");
        config_ = config;
        if (launch()) {
            address_ = "unix:path=" + socket;
        }
    }
    ~DbusDaemon() { stop(); }

    // Stops the daemon (its clients are disconnected) and starts a new one at the same address.
    bool restart() {
        stop();
        return launch();
    }
    void stop() {
        if (daemon_ && daemon_->running()) {
            daemon_->kill(SIGTERM);
            (void)daemon_->wait(5s);
        }
    }
    DbusDaemon(const DbusDaemon&) = delete;
    DbusDaemon& operator=(const DbusDaemon&) = delete;

    bool ok() const { return !address_.empty(); }
    const std::string& error() const { return error_; }
    const std::string& address() const { return address_; }
    const TempDir& dir() const { return dir_; }

private:
    bool launch() {
        daemon_ = std::make_unique<Child>(std::vector<std::string>{"/usr/bin/dbus-daemon", "--config-file=" + config_,
                                                                   "--nofork", "--print-address"});
        const auto line = daemon_->read_line(10s);
        if (!line || line->rfind("unix:", 0) != 0) {
            error_ = "dbus-daemon did not print its address: " + daemon_->transcript();
            return false;
        }
        return true;
    }

    TempDir dir_;
    std::string config_;
    std::unique_ptr<Child> daemon_;
    std::string address_;
    std::string error_;
};

// --- an sd-bus client ------------------------------------------------------------------------------

struct TestBusDeleter {
    void operator()(sd_bus* b) const { (void)sd_bus_flush_close_unref(b); }
};
using TestBusPtr = std::unique_ptr<sd_bus, TestBusDeleter>;
struct TestMessageDeleter {
    void operator()(sd_bus_message* m) const { (void)sd_bus_message_unref(m); }
};
using TestMessagePtr = std::unique_ptr<sd_bus_message, TestMessageDeleter>;
struct TestSlotDeleter {
    void operator()(sd_bus_slot* s) const { (void)sd_bus_slot_unref(s); }
};
using TestSlotPtr = std::unique_ptr<sd_bus_slot, TestSlotDeleter>;

inline TestBusPtr connect_bus(const std::string& address) {
    sd_bus* raw = nullptr;
    if (sd_bus_new(&raw) < 0) {
        return nullptr;
    }
    TestBusPtr bus(raw);
    if (sd_bus_set_address(bus.get(), address.c_str()) < 0 || sd_bus_set_bus_client(bus.get(), 1) < 0 ||
        sd_bus_start(bus.get()) < 0) {
        return nullptr;
    }
    return bus;
}

struct CallResult {
    TestMessagePtr reply;
    std::string error_name; // empty on success
    std::string error_message;
    int r = 0;
    bool ok() const { return reply != nullptr; }
};

template <typename... Args>
CallResult call_method(sd_bus* bus, const char* member, const char* types = nullptr, Args... args) {
    CallResult c;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    c.r = sd_bus_call_method(bus, k_gz_name, k_gz_path, k_gz_iface, member, &error, &reply, types, args...);
    if (c.r >= 0) {
        c.reply.reset(reply);
    } else {
        c.error_name = error.name ? error.name : "";
        c.error_message = error.message ? error.message : "";
    }
    sd_bus_error_free(&error);
    return c;
}

// Polls until the manager's name answers ListApps (bounded).
inline bool wait_for_manager(sd_bus* bus, std::chrono::milliseconds timeout = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (call_method(bus, "ListApps").ok()) {
            return true;
        }
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

// Records signals of the manager's interface (every member) until asked.
class SignalRecorder {
public:
    struct Signal {
        std::string member;
        TestMessagePtr message;
        std::chrono::steady_clock::time_point at;
    };

    explicit SignalRecorder(sd_bus* bus) : bus_(bus) {
        sd_bus_slot* slot = nullptr;
        const int r = sd_bus_match_signal(bus, &slot, nullptr, k_gz_path, k_gz_iface, nullptr, on_signal, this);
        if (r >= 0) {
            slot_.reset(slot);
        }
    }
    bool ok() const { return slot_ != nullptr; }

    // The next signal named `member` (earlier ones of other names are kept), or nullopt.
    std::optional<Signal> wait(const std::string& member, std::chrono::milliseconds timeout = 20s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            for (auto it = signals_.begin(); it != signals_.end(); ++it) {
                if (it->member == member) {
                    Signal s = std::move(*it);
                    signals_.erase(it);
                    return s;
                }
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::microseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return std::nullopt;
            }
            const int r = sd_bus_process(bus_, nullptr);
            if (r < 0) {
                return std::nullopt;
            }
            if (r == 0) {
                (void)sd_bus_wait(bus_, static_cast<std::uint64_t>(std::min<long long>(left.count(), 100000)));
            }
        }
    }

private:
    static int on_signal(sd_bus_message* m, void* userdata, sd_bus_error*) {
        auto* self = static_cast<SignalRecorder*>(userdata);
        self->signals_.push_back(Signal{sd_bus_message_get_member(m), TestMessagePtr(sd_bus_message_ref(m)),
                                        std::chrono::steady_clock::now()});
        return 0;
    }

    sd_bus* bus_;
    TestSlotPtr slot_;
    std::vector<Signal> signals_;
};

// Reads `(quubbuuutuuuuud)` reclaim reports: returns (count, total rules, total mbufs returned).
struct ReclaimTotals {
    unsigned queues = 0;
    unsigned owned = 0;
    unsigned rules = 0;
    unsigned mbufs = 0;
    unsigned memp_pools = 0;
};
inline int read_reclaim_reports(sd_bus_message* m, ReclaimTotals& t) {
    int r = sd_bus_message_enter_container(m, 'a', "(quubbuuutuuuuud)");
    if (r < 0) {
        return r;
    }
    for (;;) {
        std::uint16_t slot = 0;
        std::uint32_t pid = 0, epoch = 0, rules = 0, listeners = 0, memps = 0, inbox = 0, rx = 0, salvaged = 0,
                      cache = 0, mbufs = 0;
        int owned = 0, timed_out = 0;
        std::uint64_t memp_bytes = 0;
        double usec = 0;
        r = sd_bus_message_read(m, "(quubbuuutuuuuud)", &slot, &pid, &epoch, &owned, &timed_out, &rules, &listeners,
                                &memps, &memp_bytes, &inbox, &rx, &salvaged, &cache, &mbufs, &usec);
        if (r <= 0) {
            break;
        }
        ++t.queues;
        t.owned += owned ? 1u : 0u;
        t.rules += rules;
        t.mbufs += mbufs;
        t.memp_pools += memps;
    }
    if (r < 0) {
        return r;
    }
    return sd_bus_message_exit_container(m);
}

// --- a real gazelle-mgr -----------------------------------------------------------------------------

// A small configuration on a private hugetlbfs: ports veth0 (2 queues) and veth1 (1 queue) on
// bridge br0, 1023-mbuf pools, the registration socket in `dir`.
inline std::string write_manager_config(const TempDir& dir, const HugeMount& mount, const std::string& prefix) {
    return dir.write("gazelle-mgr.conf", R"(dpdk: {
    file_prefix = ")" + prefix + R"(";
    huge_dir = ")" + mount.path() + R"(";
    main_lcore = 0;
    app_lcores = "20-40";
    app_cpus = "0-1";
    extra_args = ["--no-telemetry", "--log-level=lib.eal:error"];
};
fabric: {
    max_queues = 8;
    ring_size = 256;
    flow_table_size = 4096;
    listener_table_size = 64;
    mbufs_per_queue = 1023;
    mbuf_cache_size = 32;
    l2_pool_mbufs = 1023;
};
ports = (
    { name = "veth0"; type = "user-veth"; mac = "02:00:00:00:00:01"; ipv4 = "198.18.0.1";
      netmask = "255.255.255.0"; queues = 2; bridge = "br0"; },
    { name = "veth1"; type = "user-veth"; mac = "02:00:00:00:00:02"; ipv4 = "198.18.0.2";
      netmask = "255.255.255.0"; queues = 1; bridge = "br0"; }
);
bridges = ( { name = "br0"; } );
manager: {
    socket = ")" + dir.path() + R"(/mgr.sock";
    max_apps = 8;
    log_level = "info";
};
)");
}

inline std::string gazelle_mgr_path() {
#ifdef GAZELLE_MGR_BIN
    return GAZELLE_MGR_BIN;
#else
    return bin_path("../../mgr/gazelle-mgr");
#endif
}

inline std::string gazellectl_path() {
#ifdef GAZELLECTL_BIN
    return GAZELLECTL_BIN;
#else
    return bin_path("../../tools/gazellectl");
#endif
}

// gazellectl --bus ADDRESS ARGS...
inline std::vector<std::string> gazellectl(const std::string& address, std::vector<std::string> args) {
    std::vector<std::string> argv = {gazellectl_path(), "--bus", address};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

// gazelle-mgr --config <temp config> --bus <address>, up once its name answers.
class ManagerProcess {
public:
    ManagerProcess(const HugeMount& mount, const std::string& bus_address) : eal_(mount, "bus") {
        config_ = write_manager_config(dir_, mount, eal_.prefix());
        const auto t0 = std::chrono::steady_clock::now();
        child_ = std::make_unique<Child>(
            std::vector<std::string>{gazelle_mgr_path(), "--config", config_, "--bus", bus_address});
        client_ = connect_bus(bus_address);
        if (!child_->running() || !client_) {
            error_ = "gazelle-mgr or the bus client did not start";
            return;
        }
        if (!wait_for_manager(client_.get())) {
            error_ = "gazelle-mgr did not answer on the bus within 30 s";
            return;
        }
        start_ms_ = ms_since(t0);
        ready_ = true;
    }
    ~ManagerProcess() {
        if (child_ && child_->running()) {
            child_->kill(SIGTERM);
            if (!child_->wait(10s)) {
                child_->kill(SIGKILL);
                (void)child_->wait(5s);
            }
        }
    }

    bool ok() const { return ready_ && child_->running(); }
    const std::string& error() const { return error_; }
    sd_bus* bus() const { return client_.get(); }
    Child& child() { return *child_; }
    std::string socket() const { return dir_.path() + "/mgr.sock"; }
    const EalInstance& eal() const { return eal_; }
    double start_ms() const { return start_ms_; }

private:
    TempDir dir_;
    EalInstance eal_;
    std::string config_;
    std::unique_ptr<Child> child_;
    TestBusPtr client_;
    std::string error_;
    bool ready_ = false;
    double start_ms_ = 0;
};

} // namespace gazelle::test
