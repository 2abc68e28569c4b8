//! Process-wide memory settings of the station daemon.
//!
//! glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB),
//! so the convolution work buffers ONNX Runtime allocates and frees on every model run end up
//! on the heap, where they fragment across threads' arenas: a daemon on the synthetic camera
//! peaked at 160–190 MB after 200 frames and at 285 MB (VmHWM) in a 10-minute soak. A fixed
//! threshold sends every block above it to mmap, returned to the kernel when freed: peak RSS
//! ~100 MB at 4 MiB, ~71 MB at 256 KiB. That cost page faults on each run's fresh buffers
//! (model run +25-35 % on the x86 CPU provider) as long as ONNX Runtime's CPU arena was off;
//! with it on (`[runtime] cpu_mem_arena`, the default since session 21) the model's buffers are
//! kept between runs and the threshold costs nothing measurable (BENCHMARKS.md "Memory").
//! `[runtime] malloc_mmap_threshold_kb` chooses; 0 leaves glibc's dynamic threshold.

/// Outcome of [`set_mmap_threshold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmapThreshold {
    /// Set to this many bytes.
    Set(usize),
    /// Left to the C library (0 asked, or not glibc).
    Default,
    /// glibc refused the value.
    Refused(usize),
}

/// Largest threshold older glibc accepts on 64-bit targets (`HEAP_MAX_SIZE / 2`); the config
/// refuses more.
pub const MAX_MMAP_THRESHOLD_KB: u32 = 32 * 1024;

/// Fix malloc's mmap threshold at `kb` KiB (0: leave the C library's default).
pub fn set_mmap_threshold(kb: u32) -> MmapThreshold {
    if kb == 0 {
        return MmapThreshold::Default;
    }
    set_impl(kb as usize * 1024)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_impl(bytes: usize) -> MmapThreshold {
    let Ok(v) = libc::c_int::try_from(bytes) else {
        return MmapThreshold::Refused(bytes);
    };
    // SAFETY: mallopt only stores the parameter in glibc's malloc state (under its lock).
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, v) };
    if ok == 1 {
        MmapThreshold::Set(bytes)
    } else {
        MmapThreshold::Refused(bytes)
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_impl(_bytes: usize) -> MmapThreshold {
    MmapThreshold::Default
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_leaves_the_default_and_a_valid_value_is_taken() {
        assert_eq!(set_mmap_threshold(0), MmapThreshold::Default);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            assert_eq!(set_mmap_threshold(4096), MmapThreshold::Set(4096 * 1024));
        }
    }
}
