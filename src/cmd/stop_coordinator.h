// StopCoordinator: how `wxsessiond serve` stops.
//
// A dedicated thread waits for SIGTERM or SIGINT (Main blocks both in every
// thread, so no work ever happens in a signal handler). On the first one it
// logs "stopping", tells systemd STOPPING=1 and stops accepting; the server
// then lets in-flight requests finish and Serve returns, and the main thread
// calls Finish: checkpoint the WAL, log "stopped", exit 0 (1 when Serve
// failed). If requests are still running at the drain deadline, the signal
// thread logs "drain_timeout", checkpoints and exits 0 by itself: committed
// writes are durable in the WAL whatever happens to the threads still
// running. A second signal during the drain changes nothing (the signals
// stay blocked and nobody waits for them again). A failed checkpoint is
// logged as a warning and does not change the exit code.
//
// The signal source, the drain wait and the process exit are injected, so
// tests drive the whole sequence without signals, sleeps or exits.
//
// Thread-safety: Start and Finish are called by the thread that runs the
// server, once each, in that order; the rest happens on the coordinator's
// own thread.
#ifndef WXSESSION_CMD_STOP_COORDINATOR_H_
#define WXSESSION_CMD_STOP_COORDINATOR_H_

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <string>
#include <thread>

#include "ops/log.h"
#include "wxsession/clock.h"
#include "wxsession/status.h"
#include "wxsession/thread_annotations.h"

namespace wxsession {
namespace cmd {

// Blocks SIGINT and SIGTERM in the calling thread (and so in every thread
// it starts afterwards) and returns that set.
sigset_t BlockStopSignals();

// Where stop signals come from.
class StopSignalSource {
 public:
  virtual ~StopSignalSource() = default;
  // Blocks until a stop signal arrives and returns its number (SIGTERM or
  // SIGINT), or returns 0 once Interrupt has been called.
  virtual int Wait() = 0;
  // Makes a Wait in progress, or the next one, return 0. Any thread.
  virtual void Interrupt() = 0;
};

// The process's own signals: sigwait on the set BlockStopSignals blocks.
// Interrupt wakes the waiting thread with a SIGTERM sent to that thread
// only.
class BlockedSignalSource : public StopSignalSource {
 public:
  BlockedSignalSource();
  int Wait() override;
  void Interrupt() override;
  // True while a thread is in Wait (for tests).
  bool Waiting();

 private:
  const sigset_t signals_;  // constant after construction
  Mutex mutex_;
  bool interrupted_ GUARDED_BY(mutex_) = false;
  bool waiting_ GUARDED_BY(mutex_) = false;
  pthread_t waiter_ GUARDED_BY(mutex_){};  // valid while waiting_
};

// What the coordinator does to the rest of the server.
struct StopSteps {
  std::function<void()> stop_accepting;  // Serve returns once requests finish
  std::function<Status()> checkpoint;    // the store's WAL checkpoint
  std::function<void(const std::string& state)> notify;  // to systemd
  std::function<void(int code)> exit_now;  // ends the process at once
};

class StopCoordinator {
 public:
  // How long a stop waits for in-flight requests before exiting without
  // them: the budget is 5 s, and the last second is for the WAL
  // checkpoint and the exit itself. Idle kept-alive connections close
  // within the HTTP keep-alive timeout (2 s), well inside this.
  static constexpr std::chrono::milliseconds kDrainDeadline{4000};

  // The production steps: `stop_accepting` and `checkpoint` as given,
  // NotifyServiceManager, and fflush + _exit.
  static StopSteps ProcessSteps(std::function<void()> stop_accepting,
                                std::function<Status()> checkpoint);
  // `signals`, `logger` and `clock` must outlive the coordinator. The drain
  // waits through clock.WaitFor, which a test's Clock controls.
  StopCoordinator(StopSignalSource& signals, Logger& logger, StopSteps steps,
                  const Clock& clock,
                  std::chrono::milliseconds drain_deadline = kDrainDeadline);
  // Joins the coordinator's thread if Finish did not (an early return).
  ~StopCoordinator();
  StopCoordinator(const StopCoordinator&) = delete;
  StopCoordinator& operator=(const StopCoordinator&) = delete;

  // Starts the thread that waits for a stop signal.
  void Start();

  // Called once Serve has returned, `served` being its result: checkpoints,
  // wakes and joins the coordinator's thread, logs "stopped". Returns the
  // exit code: kExitOk when served, kExitFailure otherwise.
  int Finish(bool served);

 private:
  void WaitForSignal();  // the coordinator's thread
  void Checkpoint();

  StopSignalSource& signals_;
  Logger& logger_;
  const StopSteps steps_;  // constant after construction
  const Clock& clock_;     // thread-safe by contract
  const std::chrono::milliseconds
      drain_deadline_;  // constant after construction
  std::thread thread_;

  Mutex mutex_;
  std::condition_variable serve_returned_cv_;  // with mutex_
  bool serve_returned_ GUARDED_BY(mutex_) = false;
};

}  // namespace cmd
}  // namespace wxsession

#endif  // WXSESSION_CMD_STOP_COORDINATOR_H_
