//! Spreading CPU-bound work over the machine's cores (parsing and decrypting many
//! certificates at start), without a thread-pool dependency.

/// `f` over every item, in order, on up to `available_parallelism` scoped threads.
/// Small inputs stay on the calling thread.
pub fn map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    const MIN_PER_THREAD: usize = 256;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads = threads.min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            items.chunks(chunk).map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<U>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_for_small_and_large_inputs() {
        let small: Vec<u32> = (0..10).collect();
        assert_eq!(super::map(&small, |x| x * 2), small.iter().map(|x| x * 2).collect::<Vec<_>>());
        let large: Vec<u32> = (0..10_000).collect();
        assert_eq!(super::map(&large, |x| x + 1), large.iter().map(|x| x + 1).collect::<Vec<_>>());
    }
}
