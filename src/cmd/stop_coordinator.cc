#include "cmd/stop_coordinator.h"

#include <pthread.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "cmd/commands.h"
#include "ops/systemd_notify.h"
#include "wxsession/thread_annotations.h"

namespace wxsession {
namespace cmd {

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// --- BlockedSignalSource
// -------------------------------------------------------

BlockedSignalSource::BlockedSignalSource() : signals_(BlockStopSignals()) {}

int BlockedSignalSource::Wait() {
  {
    MutexLock lock(mutex_);
    if (interrupted_) return 0;
    waiter_ = pthread_self();
    waiting_ = true;
  }
  // An Interrupt between the unlock and sigwait leaves its SIGTERM pending
  // on this thread, and sigwait takes it at once.
  int received = 0;
  sigwait(&signals_, &received);
  MutexLock lock(mutex_);
  waiting_ = false;
  return interrupted_ ? 0 : received;
}

void BlockedSignalSource::Interrupt() {
  MutexLock lock(mutex_);
  interrupted_ = true;
  // Not a kill: SIGTERM is blocked in the waiter, which takes it in sigwait,
  // so this only wakes it.
  // NOLINTNEXTLINE(bugprone-bad-signal-to-kill-thread): wakes sigwait
  if (waiting_) pthread_kill(waiter_, SIGTERM);
}

bool BlockedSignalSource::Waiting() {
  MutexLock lock(mutex_);
  return waiting_;
}

// --- StopCoordinator
// -------------------------------------------------------------

StopSteps StopCoordinator::ProcessSteps(std::function<void()> stop_accepting,
                                        std::function<Status()> checkpoint) {
  StopSteps steps;
  steps.stop_accepting = std::move(stop_accepting);
  steps.checkpoint = std::move(checkpoint);
  steps.notify = [](const std::string& state) { NotifyServiceManager(state); };
  steps.exit_now = [](int code) {
    std::fflush(nullptr);
    _exit(code);
  };
  return steps;
}

StopCoordinator::StopCoordinator(StopSignalSource& signals, Logger& logger,
                                 StopSteps steps, const Clock& clock,
                                 std::chrono::milliseconds drain_deadline)
    : signals_(signals),
      logger_(logger),
      steps_(std::move(steps)),
      clock_(clock),
      drain_deadline_(drain_deadline) {}

StopCoordinator::~StopCoordinator() {
  if (!thread_.joinable()) return;
  {
    MutexLock lock(mutex_);
    serve_returned_ = true;
  }
  serve_returned_cv_.notify_all();
  signals_.Interrupt();
  thread_.join();
}

void StopCoordinator::Start() {
  thread_ = std::thread([this] { WaitForSignal(); });
}

int StopCoordinator::Finish(bool served) {
  Checkpoint();
  {
    MutexLock lock(mutex_);
    serve_returned_ = true;
  }
  serve_returned_cv_.notify_all();
  // If Serve returned for another reason than a signal, the thread is still
  // waiting for one.
  signals_.Interrupt();
  if (thread_.joinable()) thread_.join();
  logger_.Info("stopped");
  return served ? kExitOk : kExitFailure;
}

void StopCoordinator::WaitForSignal() {
  const int received = signals_.Wait();
  MutexLock lock(mutex_);
  if (received == 0 || serve_returned_) return;  // woken by Finish
  lock.Unlock();
  logger_.Info("stopping",
               {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  steps_.notify("STOPPING=1");
  steps_.stop_accepting();
  lock.Lock();
  if (clock_.WaitFor(serve_returned_cv_, lock, drain_deadline_.count(),
                     [this]() REQUIRES(mutex_) { return serve_returned_; })) {
    return;  // Finish does the rest
  }
  lock.Unlock();
  logger_.Error("drain_timeout",
                {{"detail",
                  "requests still running at the stop deadline; "
                  "exiting without them"}});
  Checkpoint();
  steps_.exit_now(kExitOk);
}

void StopCoordinator::Checkpoint() {
  Status checkpointed = steps_.checkpoint();
  if (checkpointed.ok()) {
    logger_.Info("checkpoint", {{"result", "ok"}});
  } else {
    logger_.Warn("checkpoint", {{"result", "failed"},
                                {"detail", checkpointed.operator_text()}});
  }
}

}  // namespace cmd
}  // namespace wxsession
