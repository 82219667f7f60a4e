//! Prints a well-formed token that no store has issued (valid prefix, length
//! and checksum): what anyone can compute, for benchmarks of unknown tokens.

fn main() {
    println!("{}", pat_core::TokenSecret::generate().expose_secret());
}
