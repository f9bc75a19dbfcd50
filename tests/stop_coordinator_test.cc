// StopCoordinator (src/cmd/stop_coordinator.h): the stop sequence of
// `serve`, driven by a queue of signals and a drain wait the test controls:
// no real signals (except for BlockedSignalSource's own tests), no sleeps,
// no exits.
#include "cmd/stop_coordinator.h"
#include "wxsession/thread_annotations.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cmd/commands.h"
#include "ops/log.h"

namespace wxsession::cmd {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// Long enough for any thread on a loaded machine; only a failing test
// waits this long.
constexpr auto kPatience = std::chrono::seconds(20);

// Signals from a queue: Wait takes the next one, or blocks until one is
// sent or Interrupt is called.
class QueuedSignals : public StopSignalSource {
 public:
  void Send(int signal) {
    MutexLock lock(mutex_);
    queue_.push_back(signal);
    cv_.notify_all();
  }
  int Wait() override {
    MutexLock lock(mutex_);
    ++waits_;
    lock.Wait(cv_, [this] { return interrupted_ || !queue_.empty(); });
    if (interrupted_) return 0;
    int signal = queue_.front();
    queue_.pop_front();
    return signal;
  }
  void Interrupt() override {
    MutexLock lock(mutex_);
    interrupted_ = true;
    cv_.notify_all();
  }
  size_t pending() {
    MutexLock lock(mutex_);
    return queue_.size();
  }
  int waits() {
    MutexLock lock(mutex_);
    return waits_;
  }

 private:
  Mutex mutex_;
  std::condition_variable cv_;  // with mutex_
  std::deque<int> queue_;       // guarded by mutex_
  bool interrupted_ = false;    // guarded by mutex_
  int waits_ = 0;               // guarded by mutex_
};

// Records what the coordinator does to the server.
class Server {
 public:
  StopSteps Steps() {
    StopSteps steps;
    steps.stop_accepting = [this] { Record([this] { ++stop_accepting_; }); };
    steps.checkpoint = [this] {
      Record([this] { ++checkpoints_; });
      MutexLock lock(mutex_);
      return checkpoint_result_;
    };
    steps.notify = [this](const std::string& state) {
      Record([this, state] { notified_.push_back(state); });
    };
    steps.exit_now = [this](int code) {
      Record([this, code] {
        exit_code_ = code;
        checkpoints_at_exit_ = checkpoints_;
      });
    };
    return steps;
  }
  void FailCheckpoints(Status status) {
    MutexLock lock(mutex_);
    checkpoint_result_ = status;
  }
  // Waits until `condition` holds (under the lock); false after kPatience.
  bool WaitFor(const std::function<bool()>& condition) {
    MutexLock lock(mutex_);
    return lock.WaitFor(cv_, kPatience, condition);
  }
  bool WaitForStopAccepting() {
    return WaitFor([this] { return stop_accepting_ > 0; });
  }
  bool WaitForExit() {
    return WaitFor([this] { return exit_code_.has_value(); });
  }

  int stop_accepting() { return Get(stop_accepting_); }
  int checkpoints() { return Get(checkpoints_); }
  int checkpoints_at_exit() { return Get(checkpoints_at_exit_); }
  std::optional<int> exit_code() { return Get(exit_code_); }
  std::vector<std::string> notified() { return Get(notified_); }

 private:
  void Record(const std::function<void()>& change) {
    MutexLock lock(mutex_);
    change();
    cv_.notify_all();
  }
  template <typename T>
  T Get(const T& field) {
    MutexLock lock(mutex_);
    return field;
  }

  Mutex mutex_;
  std::condition_variable cv_;               // with mutex_
  int stop_accepting_ = 0;                   // guarded by mutex_
  int checkpoints_ = 0;                      // guarded by mutex_
  int checkpoints_at_exit_ = 0;              // guarded by mutex_
  std::optional<int> exit_code_;             // guarded by mutex_
  std::vector<std::string> notified_;        // guarded by mutex_
  Status checkpoint_result_ = Status::Ok();  // guarded by mutex_
};

// The clock the drain waits on: time stands still (only Finish ends the
// wait) or the deadline passes at once. Remembers the deadline asked for.
class Drain : public Clock {
 public:
  enum class Time { kStandsStill, kPassesTheDeadline };
  explicit Drain(Time time) : time_(time) {}

  int64_t Now() const override { return 1'700'000'000; }
  int64_t MonotonicMillis() const override { return 0; }
  void SleepFor(int64_t) const override {}
  bool WaitFor(std::condition_variable& cv, MutexLock& lock, int64_t ms,
               const std::function<bool()>& done) const override {
    {
      MutexLock guard(mutex_);
      deadline_ = milliseconds(ms);
    }
    if (time_ == Time::kStandsStill) lock.Wait(cv, done);
    return done();
  }
  std::optional<milliseconds> deadline() const {
    MutexLock guard(mutex_);
    return deadline_;
  }

 private:
  const Time time_;
  mutable Mutex mutex_;
  mutable std::optional<milliseconds> deadline_ GUARDED_BY(mutex_);
};

// A Logger writing JSON lines to a temporary file the test reads back.
class LogCapture {
 public:
  LogCapture() : file_(std::tmpfile()), logger_(file_, LogFormat::kJson) {}
  ~LogCapture() { std::fclose(file_); }
  Logger& logger() { return logger_; }

  std::vector<json> Lines(const std::string& event) {
    std::fflush(file_);
    std::rewind(file_);
    std::vector<json> lines;
    char buffer[4096];
    while (std::fgets(buffer, sizeof(buffer), file_)) {
      json line = json::parse(buffer, nullptr, false);
      if (line.is_object() && line.value("event", "") == event) {
        lines.push_back(line);
      }
    }
    std::fseek(file_, 0, SEEK_END);
    return lines;
  }

 private:
  FILE* const file_;
  Logger logger_;
};

// Each test: a coordinator over queued signals, a recording server, a log
// read back, and a drain whose time the test picks. The coordinator is
// declared last, so it is joined before what it uses goes away.
class StopCoordinatorTest : public ::testing::Test {
 protected:
  StopCoordinator& Start(Drain::Time time) {
    drain_ = std::make_unique<Drain>(time);
    stop_ = std::make_unique<StopCoordinator>(signals_, log_.logger(),
                                              server_.Steps(), *drain_);
    stop_->Start();
    return *stop_;
  }

  QueuedSignals signals_;
  Server server_;
  LogCapture log_;
  std::unique_ptr<Drain> drain_;
  std::unique_ptr<StopCoordinator> stop_;
};

TEST_F(StopCoordinatorTest,
       SigtermStopsAcceptingAndFinishCheckpointsOnceAndExitsZero) {
  StopCoordinator& stop = Start(Drain::Time::kStandsStill);
  signals_.Send(SIGTERM);
  ASSERT_TRUE(server_.WaitForStopAccepting());
  ASSERT_EQ(log_.Lines("stopping").size(), 1u);
  EXPECT_EQ(log_.Lines("stopping")[0]["signal"], "SIGTERM");
  EXPECT_EQ(log_.Lines("stopping")[0]["level"], "info");
  EXPECT_EQ(server_.notified(), std::vector<std::string>{"STOPPING=1"});
  // Draining: nothing is checkpointed until Serve returns.
  EXPECT_EQ(server_.checkpoints(), 0);

  EXPECT_EQ(stop.Finish(/*served=*/true), kExitOk);
  EXPECT_EQ(server_.stop_accepting(), 1);
  EXPECT_EQ(server_.checkpoints(), 1);
  ASSERT_EQ(log_.Lines("checkpoint").size(), 1u);
  EXPECT_EQ(log_.Lines("checkpoint")[0]["result"], "ok");
  EXPECT_EQ(log_.Lines("stopped").size(), 1u);
  EXPECT_TRUE(log_.Lines("drain_timeout").empty());
  EXPECT_FALSE(server_.exit_code().has_value());
  EXPECT_EQ(drain_->deadline(), StopCoordinator::kDrainDeadline);
}

TEST_F(StopCoordinatorTest, SigintIsNamedInTheLog) {
  StopCoordinator& stop = Start(Drain::Time::kStandsStill);
  signals_.Send(SIGINT);
  ASSERT_TRUE(server_.WaitForStopAccepting());
  EXPECT_EQ(stop.Finish(true), kExitOk);
  ASSERT_EQ(log_.Lines("stopping").size(), 1u);
  EXPECT_EQ(log_.Lines("stopping")[0]["signal"], "SIGINT");
}

TEST_F(StopCoordinatorTest, DrainDeadlineLogsCheckpointsAndExitsZeroAtOnce) {
  Start(Drain::Time::kPassesTheDeadline);
  signals_.Send(SIGTERM);
  ASSERT_TRUE(server_.WaitForExit());
  EXPECT_EQ(server_.exit_code(), kExitOk);
  EXPECT_EQ(drain_->deadline(), milliseconds(4000));
  EXPECT_EQ(server_.stop_accepting(), 1);
  // The checkpoint comes before the exit: committed writes are in the WAL.
  EXPECT_EQ(server_.checkpoints_at_exit(), 1);
  ASSERT_EQ(log_.Lines("drain_timeout").size(), 1u);
  EXPECT_EQ(log_.Lines("drain_timeout")[0]["level"], "error");
  EXPECT_EQ(log_.Lines("drain_timeout")[0]["detail"],
            "requests still running at the stop deadline; exiting without "
            "them");
  ASSERT_EQ(log_.Lines("checkpoint").size(), 1u);
  EXPECT_EQ(log_.Lines("checkpoint")[0]["result"], "ok");
  // The process has exited: no "stopped" line.
  EXPECT_TRUE(log_.Lines("stopped").empty());
}

TEST_F(StopCoordinatorTest, FailedCheckpointIsAWarningAndKeepsTheExitCode) {
  server_.FailCheckpoints(
      Status(ErrorCode::kStoreUnavailable, "database is locked"));
  StopCoordinator& stop = Start(Drain::Time::kStandsStill);
  signals_.Send(SIGTERM);
  ASSERT_TRUE(server_.WaitForStopAccepting());
  EXPECT_EQ(stop.Finish(true), kExitOk);
  ASSERT_EQ(log_.Lines("checkpoint").size(), 1u);
  json line = log_.Lines("checkpoint")[0];
  EXPECT_EQ(line["level"], "warn");
  EXPECT_EQ(line["result"], "failed");
  EXPECT_NE(line.value("detail", "").find("database is locked"),
            std::string::npos)
      << line.dump();
  EXPECT_EQ(log_.Lines("stopped").size(), 1u);
}

TEST_F(StopCoordinatorTest, FailedCheckpointAtTheDeadlineStillExitsZero) {
  server_.FailCheckpoints(Status(ErrorCode::kStoreUnavailable, "disk full"));
  Start(Drain::Time::kPassesTheDeadline);
  signals_.Send(SIGTERM);
  ASSERT_TRUE(server_.WaitForExit());
  EXPECT_EQ(server_.exit_code(), kExitOk);
  ASSERT_EQ(log_.Lines("checkpoint").size(), 1u);
  EXPECT_EQ(log_.Lines("checkpoint")[0]["result"], "failed");
}

TEST_F(StopCoordinatorTest, ServeFailingWithoutASignalExitsOneWithoutStopping) {
  StopCoordinator& stop = Start(Drain::Time::kStandsStill);
  EXPECT_EQ(stop.Finish(/*served=*/false), kExitFailure);
  EXPECT_EQ(server_.stop_accepting(), 0);
  EXPECT_TRUE(server_.notified().empty());
  EXPECT_TRUE(log_.Lines("stopping").empty());
  EXPECT_EQ(server_.checkpoints(), 1);
  EXPECT_EQ(log_.Lines("stopped").size(), 1u);
}

TEST_F(StopCoordinatorTest, ASecondSignalDuringTheDrainChangesNothing) {
  StopCoordinator& stop = Start(Drain::Time::kStandsStill);
  signals_.Send(SIGTERM);
  ASSERT_TRUE(server_.WaitForStopAccepting());
  signals_.Send(SIGTERM);  // the operator presses on: still a clean drain
  EXPECT_EQ(stop.Finish(true), kExitOk);
  EXPECT_EQ(signals_.waits(), 1);
  EXPECT_EQ(signals_.pending(), 1u);
  EXPECT_EQ(server_.stop_accepting(), 1);
  EXPECT_FALSE(server_.exit_code().has_value());
  EXPECT_EQ(log_.Lines("stopping").size(), 1u);
  EXPECT_EQ(server_.checkpoints(), 1);
}

TEST_F(StopCoordinatorTest, DestroyedWithoutFinishJoinsQuietly) {
  Start(Drain::Time::kStandsStill);
  stop_.reset();
  EXPECT_EQ(server_.checkpoints(), 0);
  EXPECT_EQ(server_.stop_accepting(), 0);
  EXPECT_TRUE(log_.Lines("stopped").empty());
}

// --- BlockedSignalSource: the process's own signals -------------------------

TEST(BlockedSignalSource, TakesASignalSentToTheProcess) {
  // Blocks SIGINT/SIGTERM in this thread and so in the waiter it starts:
  // the signal below goes to sigwait, not to the default action.
  BlockedSignalSource signals;
  int received = -1;
  std::thread waiter([&] { received = signals.Wait(); });
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  waiter.join();
  EXPECT_EQ(received, SIGTERM);
}

// Polls `condition` until it holds or kPatience has passed.
bool Eventually(const std::function<bool()>& condition) {
  const auto give_up = std::chrono::steady_clock::now() + kPatience;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(BlockedSignalSource, InterruptWakesAWaiterWithZero) {
  BlockedSignalSource signals;
  std::atomic<int> received{-1};
  std::thread waiter([&] { received = signals.Wait(); });
  // Interrupt once the waiter is in Wait, so that it has to be woken (by
  // the SIGTERM sent to that thread) rather than see the flag on entry.
  ASSERT_TRUE(Eventually([&] { return signals.Waiting(); }));
  signals.Interrupt();
  if (!Eventually([&] { return received != -1; })) {
    ADD_FAILURE() << "Interrupt did not wake the waiter";
    ::kill(::getpid(), SIGTERM);  // free it, so the test can end
  }
  waiter.join();
  EXPECT_EQ(received, 0);
  // And a later Wait returns at once.
  EXPECT_EQ(signals.Wait(), 0);
}

}  // namespace
}  // namespace wxsession::cmd
