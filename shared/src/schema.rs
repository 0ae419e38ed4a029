//! The JSON Schemas of a handled action type's messages, recorded when its handler is
//! registered, so a description of the wire (the AsyncAPI document of the `platform`
//! crate, `domain-actions schema`) is generated from the very types the services decode.

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::action::{Action, ActionPayload, ActionResult};

/// Writes the schema of one message body into a generator (named types go into the
/// document's components, the body itself is returned inline).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The JSON Schemas of the messages of one handled action type, recorded by
/// [`Dispatcher::on`] and [`Dispatcher::on_result`] when the handler is registered.
#[derive(Clone, Copy)]
pub struct MessageSchemas {
    /// The body of the action: the envelope with this type's `data`.
    pub action: SchemaFn,
    /// The body of its result, or `None` for a result type (a result gets no result).
    pub result: Option<SchemaFn>,
}

impl MessageSchemas {
    /// The messages of `T`: its action and its result.
    pub fn of<T>() -> Self
    where
        T: ActionPayload + JsonSchema,
        T::Output: JsonSchema,
    {
        Self {
            action: Action::<T>::json_schema,
            result: Some(Action::<ActionResult<T::Output>>::json_schema),
        }
    }

    /// The message of `T`'s result, as handled by a service that sent `T`.
    pub fn of_result<T>() -> Self
    where
        T: ActionPayload,
        T::Output: JsonSchema,
    {
        Self {
            action: Action::<ActionResult<T::Output>>::json_schema,
            result: None,
        }
    }
}
