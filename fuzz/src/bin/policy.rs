//! AFL++ entry point for [`semantic_router_fuzz::policy`]; run it with `scripts/fuzz.sh`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        semantic_router_fuzz::policy(data);
    });
}
