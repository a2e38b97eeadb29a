//! Typed documents: Config, Profile and Plugin (`telltale.dev/v1alpha1`).
//!
//! Pure: parsing and validation of text already read by the caller. Every
//! struct is strict (`deny_unknown_fields`) and every error is located.

pub mod alerting;
pub mod check;
pub mod config;
pub mod document;
pub mod fleet;
pub mod inhibition;
pub mod node;
pub mod phase;
pub mod plugin;
pub mod receiver_layer;
pub mod suggest;
pub mod validate;
pub mod yaml;

pub use alerting::Alerting;
pub use config::{Config, ConfigSpec, Layer, PluginSettings, Profile, ProfileSpec, Slo};
pub use document::{API_VERSION, Kind};
pub use phase::Phase;
pub use plugin::Plugin;
pub use yaml::{LocatedError, Source};
