//! The JSON Schemas of a handled action type's messages, recorded when its handler is
//! registered, so a description of the wire (the AsyncAPI document of the `platform`
//! crate, `domain-actions schema`) is generated from the very types the services decode.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::action::{Action, ActionPayload, ActionResult, ActionType, Domain};

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

/// What one domain's dispatcher handles, with the schemas of each type's messages: the
/// description of a service, available before the service has its state (a model, a
/// store, a connection), so `domain-actions schema` opens nothing.
#[derive(Clone)]
pub struct Catalog {
    domain: Domain,
    messages: BTreeMap<ActionType, MessageSchemas>,
}

impl Catalog {
    /// An empty catalog of `domain`.
    pub(crate) fn new(domain: Domain) -> Self {
        Self {
            domain,
            messages: BTreeMap::new(),
        }
    }

    /// Records the messages of a handled type.
    pub(crate) fn insert(&mut self, action_type: ActionType, schemas: MessageSchemas) {
        self.messages.insert(action_type, schemas);
    }

    /// The domain described.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// Every handled action type with the JSON Schemas of its messages, sorted by type.
    pub fn messages(&self) -> impl Iterator<Item = (&ActionType, &MessageSchemas)> {
        self.messages.iter()
    }

    /// Every handled action type, sorted.
    pub fn action_types(&self) -> impl Iterator<Item = &ActionType> {
        self.messages.keys()
    }
}
