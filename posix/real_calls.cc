// SPDX-License-Identifier: BSD-3-Clause
#include "posix/real_calls.h"

#include <dlfcn.h>

#include <atomic>
#include <mutex>

namespace gazelle::posix {

namespace {

RealCalls g_real{};
std::atomic<bool> g_resolved{false};
std::mutex g_resolve_mutex;

template <typename F>
void resolve(F& slot, const char* name) {
    // Function pointers from dlsym: POSIX guarantees the object/function pointer round trip.
    slot = reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

void resolve_all() {
    RealCalls& r = g_real;
    resolve(r.socket, "socket");
    resolve(r.socketpair, "socketpair");
    resolve(r.bind, "bind");
    resolve(r.listen, "listen");
    resolve(r.accept, "accept");
    resolve(r.accept4, "accept4");
    resolve(r.connect, "connect");
    resolve(r.read, "read");
    resolve(r.readv, "readv");
    resolve(r.write, "write");
    resolve(r.writev, "writev");
    resolve(r.recv, "recv");
    resolve(r.recvfrom, "recvfrom");
    resolve(r.recvmsg, "recvmsg");
    resolve(r.send, "send");
    resolve(r.sendto, "sendto");
    resolve(r.sendmsg, "sendmsg");
    resolve(r.sendfile, "sendfile64");
    resolve(r.close, "close");
    resolve(r.shutdown, "shutdown");
    resolve(r.getsockname, "getsockname");
    resolve(r.getpeername, "getpeername");
    resolve(r.setsockopt, "setsockopt");
    resolve(r.getsockopt, "getsockopt");
    resolve(r.fcntl, "fcntl");
    resolve(r.fcntl64, "fcntl64");
    resolve(r.ioctl, "ioctl");
    resolve(r.poll, "poll");
    resolve(r.ppoll, "ppoll");
    resolve(r.select, "select");
    resolve(r.pselect, "pselect");
    resolve(r.epoll_create, "epoll_create");
    resolve(r.epoll_create1, "epoll_create1");
    resolve(r.epoll_ctl, "epoll_ctl");
    resolve(r.epoll_wait, "epoll_wait");
    resolve(r.epoll_pwait, "epoll_pwait");
    resolve(r.dup, "dup");
    resolve(r.dup2, "dup2");
    resolve(r.dup3, "dup3");
    resolve(r.fork, "fork");
    resolve(r.execve, "execve");
    resolve(r.execv, "execv");
    resolve(r.execvp, "execvp");
    resolve(r.execvpe, "execvpe");
    resolve(r.fexecve, "fexecve");
    if (r.fcntl64 == nullptr) {
        r.fcntl64 = r.fcntl;
    }
    if (r.sendfile == nullptr) {
        resolve(r.sendfile, "sendfile");
    }
}

} // namespace

const RealCalls& real() {
    if (!g_resolved.load(std::memory_order_acquire)) [[unlikely]] {
        std::lock_guard lock(g_resolve_mutex);
        if (!g_resolved.load(std::memory_order_relaxed)) {
            resolve_all();
            g_resolved.store(true, std::memory_order_release);
        }
    }
    return g_real;
}

} // namespace gazelle::posix
