// Lock annotations that the compiler checks, and the mutex they name.
//
// Under clang, -Wthread-safety (on in every clang build: meson.build) proves
// at compile time that a field marked GUARDED_BY(mu_) is only touched with
// mu_ held, and that a function marked REQUIRES(mu_) is only called with it
// held. GCC ignores the annotations. std::mutex carries no annotations in
// libstdc++, so code that shares state uses Mutex and MutexLock below.
//
//   class Counter {
//    public:
//     void Add() EXCLUDES(mu_) { MutexLock lock(mu_); ++n_; }
//    private:
//     Mutex mu_;
//     int n_ GUARDED_BY(mu_) = 0;
//   };
//
// A condition variable waits through the MutexLock that holds the mutex
// (MutexLock::Wait); a predicate that reads guarded fields is a lambda
// marked REQUIRES(mu_).
#ifndef WXSESSION_THREAD_ANNOTATIONS_H_
#define WXSESSION_THREAD_ANNOTATIONS_H_

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define WXS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define WXS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) WXS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY WXS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) WXS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) WXS_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRE(...) WXS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) WXS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define REQUIRES(...) WXS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) WXS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) WXS_THREAD_ANNOTATION(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS \
  WXS_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace wxsession {

// std::mutex with annotations. Not recursive.
class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // Tells the analysis the caller holds the mutex (e.g. in a callback that
  // is documented to run under it). Checks nothing at run time.
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  friend class MutexLock;
  std::mutex mu_;
};

// Holds a Mutex for its scope; may be released and taken again inside it,
// and is what a std::condition_variable waits with.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : lock_(mu.mu_) {}
  ~MutexLock() RELEASE() {}
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() { lock_.unlock(); }
  void Lock() ACQUIRE() { lock_.lock(); }
  // Whether the mutex is held now (false between Unlock and Lock).
  bool held() const { return lock_.owns_lock(); }

  // The waits of std::condition_variable: the mutex is released while
  // waiting and held again on return.
  void Wait(std::condition_variable& cv) { cv.wait(lock_); }
  template <typename Predicate>
  void Wait(std::condition_variable& cv, Predicate done) {
    cv.wait(lock_, done);
  }
  template <typename Rep, typename Period>
  std::cv_status WaitFor(std::condition_variable& cv,
                         std::chrono::duration<Rep, Period> timeout) {
    return cv.wait_for(lock_, timeout);
  }
  template <typename Rep, typename Period, typename Predicate>
  bool WaitFor(std::condition_variable& cv,
               std::chrono::duration<Rep, Period> timeout, Predicate done) {
    return cv.wait_for(lock_, timeout, done);
  }
  template <typename Clock, typename Duration, typename Predicate>
  bool WaitUntil(std::condition_variable& cv,
                 std::chrono::time_point<Clock, Duration> deadline,
                 Predicate done) {
    return cv.wait_until(lock_, deadline, done);
  }
  template <typename Clock, typename Duration>
  std::cv_status WaitUntil(std::condition_variable& cv,
                           std::chrono::time_point<Clock, Duration> deadline) {
    return cv.wait_until(lock_, deadline);
  }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace wxsession

#endif  // WXSESSION_THREAD_ANNOTATIONS_H_
