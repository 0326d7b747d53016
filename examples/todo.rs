//! The to-do service of [`otpsim::systems::todo`], run for real with its lists in files:
//! servers on demand, a crashed server reloading its list, a crashed database worker, and
//! the whole service restarted from disk.
//!
//! ```sh
//! cargo run-native --example todo
//! ```

use otpsim::rt::{self, Duration};
use otpsim::systems::todo::{DirStorage, Entry, Todo};
use otpsim::{ExitReason, Node};

fn main() {
    println!(
        "todo ({})",
        if rt::SIMULATED { "simulated" } else { "native" }
    );
    let dir = std::env::temp_dir().join(format!("otpsim-todo-{}", std::process::id()));
    let storage = DirStorage::new(&dir).expect("a directory for the lists");
    println!("lists are stored in {}", dir.display());
    let done = rt::block_on(0, async move {
        let node = Node::new();
        let main = node.spawn(move |p| async move {
            let todo = Todo::new(storage.clone());
            let sup = todo.start_link(&p).await.expect("the service starts");
            let bob = todo.server_process(&p, "bob").await.unwrap();
            println!("server for bob: {bob}");
            todo.add_entry(&p, bob, Entry::new(20, "dentist"))
                .await
                .unwrap();
            todo.add_entry(&p, bob, Entry::new(21, "movies"))
                .await
                .unwrap();
            println!(
                "added 'dentist' (day 20) and 'movies' (day 21), each stored before the answer"
            );
            println!(
                "bob again: {} (the same server)",
                todo.server_process(&p, "bob").await.unwrap()
            );
            println!(
                "alice: {} (another one)",
                todo.server_process(&p, "alice").await.unwrap()
            );

            println!("\nkill bob's server");
            p.exit(bob, ExitReason::Kill);
            let bob = todo.server_process(&p, "bob").await.unwrap();
            println!(
                "bob now: {bob}, day 20: {:?}",
                todo.entries(&p, bob, 20).await.unwrap()
            );

            println!("\nkill every database worker");
            let registry = todo.registry().clone();
            for i in 0..otpsim::systems::todo::POOL_SIZE {
                if let Some(worker) = registry.whereis_name(&format!("db/{i}")) {
                    p.exit(worker, ExitReason::Kill);
                }
            }
            p.sleep(Duration::from_millis(10)).await;
            todo.add_entry(&p, bob, Entry::new(20, "groceries"))
                .await
                .unwrap();
            println!(
                "the pool restarted; added 'groceries': day 20 = {:?}",
                todo.entries(&p, bob, 20).await.unwrap()
            );

            println!("\nstop the whole service and start a new one on the same files");
            p.trap_exit(true);
            p.exit(sup.pid(), ExitReason::Shutdown);
            let _ = p.node().wait_exit(sup.pid()).await;
            let todo = Todo::new(storage);
            todo.start_link(&p).await.expect("the service starts again");
            let bob = todo.server_process(&p, "bob").await.unwrap();
            println!(
                "bob: {bob}, day 20 = {:?}",
                todo.entries(&p, bob, 20).await.unwrap()
            );
            println!(
                "          day 21 = {:?}",
                todo.entries(&p, bob, 21).await.unwrap()
            );
        });
        node.wait_exit(main).await
    });
    let _ = std::fs::remove_dir_all(&dir);
    match done {
        Some(ExitReason::Normal) => println!("\ndone"),
        other => {
            eprintln!("the demo failed: {other:?}");
            std::process::exit(1);
        }
    }
}
