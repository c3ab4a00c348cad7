// SPDX-License-Identifier: BSD-3-Clause
// The D-Bus object of gazelle-mgr over a FakeBackend (tests/mgr/bus_fake_backend.h): no DPDK.
//
//   bus_fake_actor --bus ADDRESS
// Prints "READY" once it owns org.openeuler.Gazelle1 ("REFUSED" if the bus said no), and
// "DISCONNECTED" / "READY" again when the bus daemon goes away and comes back. Commands on
// stdin, one per line, each answered "OK <command>" (or "ERR <why>"):
//   attach PID PROGRAM SLOT[,SLOT...]   register an app and emit AppAttached
//   crash PID | detach PID              remove it and emit AppCrashed (how=exited) / AppDetached
//   quit
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>

#include <sys/epoll.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "mgr/bus.h"
#include "tests/mgr/bus_fake_backend.h"

namespace {

using gazelle::mgr::AppEnd;
using gazelle::mgr::AppGone;
using gazelle::mgr::Bus;

struct Actor {
    sd_event* event = nullptr;
    gazelle::test::FakeBackend backend;
    std::unique_ptr<Bus> bus;
    std::string input;
};

AppGone end_app(Actor& a, pid_t pid, AppEnd how) {
    AppGone gone;
    gone.app = a.backend.app_map().at(pid);
    gone.how = how;
    for (std::size_t i = 0; i < gone.app.slots.size(); ++i) {
        gazelle::fabric::ReclaimReport r;
        r.slot = gone.app.slots[i];
        r.pid = pid;
        r.epoch = gone.app.epochs[i];
        r.was_owned = how != AppEnd::detached;
        r.rules = how == AppEnd::detached ? 0 : 2;
        r.mbufs_returned = how == AppEnd::detached ? 0 : 300;
        r.usec = 1234.5;
        gone.reclaimed.push_back(r);
    }
    a.backend.remove_app(pid);
    return gone;
}

std::string handle(Actor& a, const std::string& line) {
    std::istringstream in(line);
    std::string command;
    in >> command;
    if (command == "attach") {
        long pid = 0;
        std::string program;
        std::string slots;
        in >> pid >> program >> slots;
        std::vector<gazelle::fabric::QueueSlot> s;
        std::vector<gazelle::fabric::Epoch> epochs;
        std::vector<std::uint16_t> lcores;
        std::istringstream list(slots);
        for (std::string item; std::getline(list, item, ',');) {
            s.push_back(static_cast<gazelle::fabric::QueueSlot>(std::stoul(item)));
            epochs.push_back(7);
            lcores.push_back(static_cast<std::uint16_t>(10 + s.back()));
        }
        a.backend.add_app(static_cast<pid_t>(pid), program, s, epochs, lcores);
        a.bus->emit_app_attached(a.backend.app_map().at(static_cast<pid_t>(pid)));
        return "OK attach";
    }
    if (command == "crash" || command == "detach") {
        long pid = 0;
        in >> pid;
        if (a.backend.app_map().count(static_cast<pid_t>(pid)) == 0) {
            return "ERR no app " + std::to_string(pid);
        }
        a.bus->emit_app_gone(
            end_app(a, static_cast<pid_t>(pid), command == "crash" ? AppEnd::exited : AppEnd::detached));
        return "OK " + command;
    }
    if (command == "quit") {
        sd_event_exit(a.event, 0);
        return "OK quit";
    }
    return "ERR unknown command '" + command + "'";
}

int on_stdin(sd_event_source* /*source*/, int fd, uint32_t /*revents*/, void* userdata) {
    Actor& a = *static_cast<Actor*>(userdata);
    char chunk[4096];
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) {
        if (n < 0 && errno == EINTR) {
            return 0;
        }
        sd_event_exit(a.event, 0);
        return 0;
    }
    a.input.append(chunk, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = a.input.find('\n')) != std::string::npos;) {
        const std::string line = a.input.substr(0, nl);
        a.input.erase(0, nl + 1);
        std::printf("%s\n", handle(a, line).c_str());
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    std::string address;
    for (int i = 1; i + 1 < argc; ++i) {
        if (std::strcmp(argv[i], "--bus") == 0) {
            address = argv[i + 1];
        }
    }
    if (address.empty()) {
        std::fprintf(stderr, "usage: bus_fake_actor --bus ADDRESS\n");
        return 2;
    }
    Actor a;
    if (sd_event_new(&a.event) < 0) {
        return 1;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    (void)sd_event_add_signal(a.event, nullptr, SIGTERM, nullptr, nullptr);
    (void)sd_event_add_signal(a.event, nullptr, SIGINT, nullptr, nullptr);
    auto bus = Bus::start(a.backend, a.event, address);
    if (!bus) {
        std::printf("ERROR %s\n", bus.error().message.c_str());
        return 1;
    }
    a.bus = std::move(*bus);
    a.bus->on_name = [](Bus::NameState state) {
        std::printf("%s\n", state == Bus::NameState::owned          ? "READY"
                            : state == Bus::NameState::disconnected ? "DISCONNECTED"
                                                                    : "REFUSED");
    };
    a.backend.on_reclaimed = [&a](const AppGone& gone) { a.bus->emit_app_gone(gone); };
    if (sd_event_add_io(a.event, nullptr, STDIN_FILENO, EPOLLIN, on_stdin, &a) < 0) {
        return 1;
    }
    const int r = sd_event_loop(a.event);
    a.bus.reset();
    sd_event_unref(a.event);
    return r < 0 ? 1 : 0;
}
