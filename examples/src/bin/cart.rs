//! The shopping cart, scripted, in memory: fill it, check out, and see later
//! changes refused.
//!
//! `cargo run -p factum-examples --bin cart`

use factum::EventSet;
use factum::prelude::*;
use factum_examples::cart::{AddItem, Cart, CheckOut, PopularItem, RemoveItem};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = App::in_memory();
    app.start_views().await?;
    let cart = app.entity::<Cart>("cart-1");
    let item = |sku: &str, quantity| AddItem {
        sku: sku.into(),
        quantity,
    };
    let steps: Vec<(&str, <Cart as Entity>::Command)> = vec![
        ("add 2 books", item("book", 2).into()),
        ("add 1 lamp", item("lamp", 1).into()),
        (
            "remove 3 books",
            RemoveItem {
                sku: "book".into(),
                quantity: 3,
            }
            .into(),
        ),
        (
            "remove 1 book",
            RemoveItem {
                sku: "book".into(),
                quantity: 1,
            }
            .into(),
        ),
        ("check out", CheckOut.into()),
        ("add 1 pen after checkout", item("pen", 1).into()),
    ];
    for (what, command) in steps {
        match cart.send(command).await {
            Ok(done) => {
                let names: Vec<&str> = done.events.iter().map(|e| e.name()).collect();
                println!("{what:<26} ok       {names:?}");
            }
            Err(CommandError::Rejected(why)) => println!("{what:<26} refused  {why}"),
            Err(other) => return Err(other.into()),
        }
    }
    println!("\nfinal cart: {:?}", cart.state().await?);

    // A second cart, so the view has something to count across carts.
    let other = app.entity::<Cart>("cart-2");
    other.send(item("book", 1)).await?;
    let last = other.send(item("pen", 3)).await?;
    let popular = app.view::<PopularItem>();
    popular.wait_for(last.position).await?;
    println!("\npopular_items view (all carts):");
    for (sku, row) in popular.list(None, 100).await?.rows {
        println!(
            "  {sku:<6} added {} time(s), {} unit(s) added, {} removed, {} kept",
            row.times_added,
            row.units_added,
            row.units_removed,
            row.units_kept()
        );
    }
    Ok(())
}
