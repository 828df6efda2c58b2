//! The talk's shopping cart: add and remove items, check out; nothing changes
//! after checkout.

use std::collections::BTreeMap;

use factum::prelude::*;
use serde::{Deserialize, Serialize};

/// Put some of a product in the cart.
#[derive(Clone, Debug)]
pub struct AddItem {
    /// The product.
    pub sku: String,
    /// How many (above zero).
    pub quantity: u32,
}

/// Take some of a product out of the cart.
#[derive(Clone, Debug)]
pub struct RemoveItem {
    /// The product.
    pub sku: String,
    /// How many (at most what is in the cart).
    pub quantity: u32,
}

/// Buy what is in the cart.
#[derive(Clone, Debug)]
pub struct CheckOut;

/// Items went into the cart.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "cart.item_added")]
pub struct ItemAdded {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u32,
}

/// Items came out of the cart.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "cart.item_removed")]
pub struct ItemRemoved {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: u32,
}

/// The cart was checked out.
#[derive(Event, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[event(name = "cart.checked_out")]
pub struct CheckedOut {
    /// When, as the command saw it.
    pub at: Timestamp,
    /// The order id, drawn from the command's deterministic generator.
    pub order_id: uuid_like::OrderId,
}

/// A tiny newtype so the example needs no uuid dependency of its own.
pub mod uuid_like {
    use serde::{Deserialize, Serialize};

    /// An order id.
    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
    pub struct OrderId(pub String);
}

/// Why the cart refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    /// Any change after checkout.
    #[error("the cart is checked out; it can no longer change")]
    CheckedOut,
    /// A zero quantity.
    #[error("the quantity must be above zero")]
    ZeroQuantity,
    /// Removing more than is there.
    #[error("the cart holds {held} of {sku}; cannot remove {requested}")]
    NotInCart {
        /// The product.
        sku: String,
        /// How many the cart holds.
        held: u32,
        /// How many were to be removed.
        requested: u32,
    },
    /// Checkout of an empty cart.
    #[error("the cart is empty")]
    Empty,
}

/// A shopping cart.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    /// Quantity by SKU.
    pub items: BTreeMap<String, u32>,
    /// Checked out: frozen.
    pub checked_out: bool,
}

#[entity(name = "cart")]
impl Cart {
    #[handle]
    fn add(&self, cmd: AddItem) -> Result<ItemAdded, CartError> {
        self.changeable()?;
        if cmd.quantity == 0 {
            return Err(CartError::ZeroQuantity);
        }
        Ok(ItemAdded {
            sku: cmd.sku,
            quantity: cmd.quantity,
        })
    }

    #[handle]
    fn remove(&self, cmd: RemoveItem) -> Result<ItemRemoved, CartError> {
        self.changeable()?;
        if cmd.quantity == 0 {
            return Err(CartError::ZeroQuantity);
        }
        let held = self.items.get(&cmd.sku).copied().unwrap_or(0);
        if held < cmd.quantity {
            return Err(CartError::NotInCart {
                sku: cmd.sku,
                held,
                requested: cmd.quantity,
            });
        }
        Ok(ItemRemoved {
            sku: cmd.sku,
            quantity: cmd.quantity,
        })
    }

    #[handle]
    fn check_out(&self, _cmd: CheckOut, ctx: &Context) -> Result<CheckedOut, CartError> {
        self.changeable()?;
        if self.items.is_empty() {
            return Err(CartError::Empty);
        }
        Ok(CheckedOut {
            at: ctx.now(),
            order_id: uuid_like::OrderId(ctx.uuid().to_string()),
        })
    }

    #[apply]
    fn item_added(&mut self, e: &ItemAdded) {
        *self.items.entry(e.sku.clone()).or_default() += e.quantity;
    }

    #[apply]
    fn item_removed(&mut self, e: &ItemRemoved) {
        if let Some(held) = self.items.get_mut(&e.sku) {
            *held -= e.quantity;
            if *held == 0 {
                self.items.remove(&e.sku);
            }
        }
    }

    #[apply]
    fn checked_out(&mut self, _e: &CheckedOut) {
        self.checked_out = true;
    }
}

impl Cart {
    fn changeable(&self) -> Result<(), CartError> {
        if self.checked_out {
            Err(CartError::CheckedOut)
        } else {
            Ok(())
        }
    }
}

/// The `popular_items` view: one row per product over all carts (key = sku).
#[derive(Default, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PopularItem {
    /// How many times the product went into a cart.
    pub times_added: u32,
    /// Units added, over all carts.
    pub units_added: u64,
    /// Units taken out again.
    pub units_removed: u64,
}

impl PopularItem {
    /// Units still in carts (added minus removed).
    pub fn units_kept(&self) -> u64 {
        self.units_added.saturating_sub(self.units_removed)
    }
}

#[view(name = "popular_items", version = 1)]
impl PopularItem {
    #[on(key = e.sku.clone())]
    fn added(&mut self, e: &ItemAdded) {
        self.times_added += 1;
        self.units_added += u64::from(e.quantity);
    }

    #[on(key = e.sku.clone())]
    fn removed(&mut self, e: &ItemRemoved) {
        self.units_removed += u64::from(e.quantity);
    }
}
