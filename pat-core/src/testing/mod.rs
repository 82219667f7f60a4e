//! What tests use: the conformance suite every backend passes, the fuzz
//! targets' entry points and the race tests' failpoints.

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
#[cfg(any(all(unix, feature = "redb"), feature = "postgres"))]
#[doc(hidden)]
pub mod failpoints;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
