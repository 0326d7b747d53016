//! The key-value store of [`otpsim::systems::kv`], run for real: create buckets, write and
//! read them, crash a bucket, crash the registry, and watch the tree recover.
//!
//! ```sh
//! cargo run-native --example kv
//! ```

use otpsim::rt::{self, Duration};
use otpsim::systems::kv;
use otpsim::{ExitReason, Node};

fn main() {
    println!(
        "kv ({})",
        if rt::SIMULATED { "simulated" } else { "native" }
    );
    let node_done = rt::block_on(0, async {
        let node = Node::new();
        let main = node.spawn(|p| async move {
            let store = kv::start_link(&p).await.expect("the store starts");
            println!("started the store: supervisor {}", store.pid());

            let shopping = kv::create(&p, "shopping").await.unwrap();
            let chores = kv::create(&p, "chores").await.unwrap();
            kv::put(&p, shopping, "milk", "3").await.unwrap();
            kv::put(&p, chores, "dishes", "tonight").await.unwrap();
            println!("created shopping = {shopping}, chores = {chores}; put milk=3, dishes=tonight");
            let milk = kv::get(&p, shopping, "milk").await.unwrap();
            println!("get shopping/milk -> {milk:?}");

            println!("\nkill the shopping bucket");
            p.exit(shopping, ExitReason::Kill);
            p.sleep(Duration::from_millis(10)).await;
            println!("lookup shopping -> {:?} (the registry saw it die)", kv::lookup(&p, "shopping").await.unwrap());
            println!("lookup chores   -> {:?} (untouched)", kv::lookup(&p, "chores").await.unwrap());

            println!("\nkill the registry");
            let registry = p.whereis(kv::REGISTRY).unwrap();
            p.exit(registry, ExitReason::Kill);
            p.sleep(Duration::from_millis(10)).await;
            let new_registry = p.whereis(kv::REGISTRY).unwrap();
            println!("registry {registry} -> {new_registry} (restarted with the bucket supervisor: one_for_all)");
            println!("chores bucket {chores} alive: {}", p.node().is_alive(chores));
            println!("names now: {:?} (empty, consistent)", kv::names(&p).await.unwrap());
            let again = kv::create(&p, "shopping").await.unwrap();
            println!("create shopping again -> {again}");
        });
        node.wait_exit(main).await
    });
    match node_done {
        Some(ExitReason::Normal) => println!("\ndone"),
        other => {
            eprintln!("the demo failed: {other:?}");
            std::process::exit(1);
        }
    }
}
