//! [`Dispatcher`]: routes actions to typed handlers by their `action_type`.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use shared::{Action, ActionError, ActionPayload, Ctx, Dispatcher, TenantId};
//!
//! #[derive(Serialize, Deserialize, schemars::JsonSchema)]
//! struct Ping { text: String }
//! impl ActionPayload for Ping {
//!     const ACTION_TYPE: &'static str = "echo.ping";
//!     type Output = Ping;
//! }
//!
//! async fn ping(action: Action<Ping>, _ctx: Ctx) -> Result<Ping, ActionError> {
//!     Ok(action.data)
//! }
//!
//! # tokio_test_block_on(async {
//! let echo: Dispatcher = Dispatcher::new("echo").on::<Ping, _>(ping);
//! let tenant = TenantId::new("acme").unwrap();
//! let out = echo.process(Action::new(tenant, Ping { text: "hi".into() })).await.unwrap();
//! assert_eq!(out.text, "hi");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```
//!
//! Handlers that need the service's shared value (a model, a store) take it as a third
//! argument, `Arc<S>`, and the dispatcher is a `Dispatcher<S>` until
//! [`Dispatcher::with_state`] gives it that value. Only a `Dispatcher` (that is,
//! `Dispatcher<()>`, nothing missing) can serve, so a forgotten value is a compile error,
//! the way axum's `Router<S>` works.
//!
//! The same dispatcher serves the durable path ([`crate::Worker`]), the rpc path
//! ([`crate::service`]) and direct calls in unit tests ([`Dispatcher::process`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use futures::FutureExt;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use crate::action::{
    Action, ActionError, ActionPayload, ActionResult, ActionType, Domain, ErrorCode, RawAction,
};
use crate::context::Ctx;
use crate::schema::{Catalog, MessageSchemas};

/// An async function handling one action type, with or without its service's shared
/// value: `async fn(Action<T>, Ctx) -> Result<R, ActionError>`, or
/// `async fn(Action<T>, Ctx, Arc<S>) -> Result<R, ActionError>`. `M` tells the two forms
/// apart ([`Stateless`], [`Stateful`]) and is always inferred.
pub trait Handler<T, R, S, M>: Send + Sync + 'static {
    /// The future the handler returns.
    type Future: Future<Output = Result<R, ActionError>> + Send + 'static;
    /// Handles one action.
    fn call(&self, action: Action<T>, ctx: Ctx, state: &Arc<S>) -> Self::Future;
}

/// Marks a [`Handler`] that takes no shared value.
pub enum Stateless {}

/// Marks a [`Handler`] that takes its service's shared value as `Arc<S>`.
pub enum Stateful {}

impl<T, R, S, F, Fut> Handler<T, R, S, Stateless> for F
where
    F: Fn(Action<T>, Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ActionError>> + Send + 'static,
{
    type Future = Fut;
    fn call(&self, action: Action<T>, ctx: Ctx, _: &Arc<S>) -> Fut {
        self(action, ctx)
    }
}

impl<T, R, S, F, Fut> Handler<T, R, S, Stateful> for F
where
    F: Fn(Action<T>, Ctx, Arc<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ActionError>> + Send + 'static,
{
    type Future = Fut;
    fn call(&self, action: Action<T>, ctx: Ctx, state: &Arc<S>) -> Fut {
        self(action, ctx, state.clone())
    }
}

/// The output of any handler, as JSON ready to go into a result.
pub type RawOutput = Box<RawValue>;
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Result<RawOutput, ActionError>> + Send>>;
type ErasedHandler<S> = Arc<dyn Fn(RawAction, Ctx, &Arc<S>) -> BoxFuture + Send + Sync>;

/// The "no value missing" state a serving dispatcher's handlers are called with.
static NOTHING: LazyLock<Arc<()>> = LazyLock::new(|| Arc::new(()));

/// Routes actions of one domain to their handlers. `S` is the shared value its handlers
/// still wait for ([`Dispatcher::with_state`]); a `Dispatcher` (`S = ()`) can serve.
pub struct Dispatcher<S = ()> {
    handlers: BTreeMap<ActionType, ErasedHandler<S>>,
    /// The domain and the JSON Schemas of each handled type's messages, for the AsyncAPI
    /// document.
    catalog: Catalog,
    /// [`Dispatcher::with_capacity`].
    capacity: Option<usize>,
}

impl<S> Clone for Dispatcher<S> {
    fn clone(&self) -> Self {
        Self {
            handlers: self.handlers.clone(),
            catalog: self.catalog.clone(),
            capacity: self.capacity,
        }
    }
}

impl<S: Send + Sync + 'static> Dispatcher<S> {
    /// A dispatcher for `domain`. Panics if the name breaks the domain rule: it is a
    /// constant in the service's code, and a bad one should stop the service at start.
    pub fn new(domain: &str) -> Self {
        let domain = Domain::new(domain).unwrap_or_else(|err| panic!("Dispatcher::new: {err}"));
        Self {
            handlers: BTreeMap::new(),
            catalog: Catalog::new(domain),
            capacity: None,
        }
    }

    /// Says that this service gains nothing from more than `actions` at once in one
    /// process: a local model that runs one batch at a time on every core, say. Its worker
    /// then takes no more than that many at once (nor more than `DA_CONCURRENCY`), so when
    /// several instances run, a waiting action goes to one with a free hand instead of
    /// queueing behind a busy one.
    pub fn with_capacity(mut self, actions: usize) -> Self {
        self.capacity = Some(actions.max(1));
        self
    }

    /// The most actions at once this service can use, if it said ([`Dispatcher::with_capacity`]).
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// Registers the handler of `T`'s action type. Panics if `T` belongs to another domain
    /// or already has a handler: both are wiring mistakes. `T` and its output must describe
    /// themselves as JSON Schemas, so the service's messages appear in the AsyncAPI document
    /// (`domain-actions schema`) without a second list of types to keep in step.
    pub fn on<T, M>(self, handler: impl Handler<T, T::Output, S, M>) -> Self
    where
        T: ActionPayload + JsonSchema,
        T::Output: JsonSchema,
    {
        let action_type = T::action_type();
        assert_eq!(
            action_type.domain(),
            *self.catalog.domain(),
            "{action_type} cannot be handled by the {} dispatcher",
            self.catalog.domain()
        );
        self.register(action_type, MessageSchemas::of::<T>(), handler)
    }

    /// Registers the handler of the results of `T` (type `<T's type>.result`), which arrive
    /// on this domain's callbacks subject when it sent `T` with a durable callback.
    pub fn on_result<T, M>(self, handler: impl Handler<ActionResult<T::Output>, (), S, M>) -> Self
    where
        T: ActionPayload,
        T::Output: JsonSchema,
    {
        self.register(
            T::action_type().result_type(),
            MessageSchemas::of_result::<T>(),
            handler,
        )
    }

    fn register<T, R, M>(
        mut self,
        action_type: ActionType,
        schemas: MessageSchemas,
        handler: impl Handler<T, R, S, M>,
    ) -> Self
    where
        T: serde::de::DeserializeOwned + Send + 'static,
        R: Serialize,
    {
        let erased: ErasedHandler<S> = Arc::new(move |raw: RawAction, ctx: Ctx, state: &Arc<S>| {
            let action = match raw.decode_data::<T>() {
                Ok(action) => action,
                Err(err) => return Box::pin(async move { Err(err) }) as BoxFuture,
            };
            let future = handler.call(action, ctx, state);
            Box::pin(async move {
                let output = future.await?;
                serde_json::value::to_raw_value(&output).map_err(|err| {
                    ActionError::handler(format!("cannot encode the handler's output: {err}"))
                })
            })
        });
        let previous = self.handlers.insert(action_type.clone(), erased);
        assert!(previous.is_none(), "{action_type} has two handlers");
        self.catalog.insert(action_type, schemas);
        self
    }

    /// Gives the handlers their shared value: the dispatcher this returns misses nothing
    /// and can serve.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use serde::{Deserialize, Serialize};
    /// use shared::{Action, ActionError, ActionPayload, Ctx, Dispatcher, TenantId};
    ///
    /// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    /// struct Greet { name: String }
    /// impl ActionPayload for Greet {
    ///     const ACTION_TYPE: &'static str = "hello.greet";
    ///     type Output = String;
    /// }
    ///
    /// struct Greeting { word: &'static str }
    ///
    /// async fn greet(action: Action<Greet>, _ctx: Ctx, greeting: Arc<Greeting>) -> Result<String, ActionError> {
    ///     Ok(format!("{} {}", greeting.word, action.data.name))
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let hello = Dispatcher::new("hello")
    ///     .on::<Greet, _>(greet)
    ///     .with_state(Greeting { word: "hi" });
    /// let tenant = TenantId::new("acme").unwrap();
    /// let out = hello.process(Action::new(tenant, Greet { name: "Ada".into() })).await;
    /// assert_eq!(out.unwrap(), "hi Ada");
    /// # });
    /// ```
    pub fn with_state(self, state: S) -> Dispatcher {
        let state = Arc::new(state);
        let handlers = self
            .handlers
            .into_iter()
            .map(|(action_type, handler)| {
                let state = state.clone();
                let bound: ErasedHandler<()> =
                    Arc::new(move |raw: RawAction, ctx: Ctx, _: &Arc<()>| {
                        handler(raw, ctx, &state)
                    });
                (action_type, bound)
            })
            .collect();
        Dispatcher {
            handlers,
            catalog: self.catalog,
            capacity: self.capacity,
        }
    }

    /// The domain this dispatcher serves.
    pub fn domain(&self) -> &Domain {
        self.catalog.domain()
    }

    /// What this dispatcher handles, with the JSON Schemas of its messages: enough to
    /// describe the service without giving it its state.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Every action type with a handler, sorted.
    pub fn action_types(&self) -> impl Iterator<Item = &ActionType> {
        self.handlers.keys()
    }

    /// Whether any result handlers are registered (then the worker also consumes the
    /// domain's callbacks).
    pub fn handles_results(&self) -> bool {
        self.handlers.keys().any(ActionType::is_result)
    }

    /// The `unknown_action_type` error naming what this dispatcher does handle.
    fn unknown(&self, action_type: &ActionType) -> ActionError {
        let known: Vec<&str> = self.handlers.keys().map(ActionType::as_str).collect();
        ActionError::new(
            ErrorCode::UnknownActionType,
            format!(
                "{} has no handler for {action_type} (it handles {})",
                self.domain(),
                known.join(", ")
            ),
        )
    }
}

impl Dispatcher {
    /// Runs the handler of `action`'s type. A panic in the handler becomes a
    /// `handler_panic` error; an unregistered type an `unknown_action_type` error.
    pub async fn dispatch(&self, action: RawAction, ctx: Ctx) -> Result<RawOutput, ActionError> {
        AssertUnwindSafe(async { self.route(action, ctx)?.await })
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panic_error(&*panic)))
    }

    /// The handler future of `action`'s type, panics not caught: the worker's pipeline
    /// catches them in its own layer (`crate::pipeline`), [`Dispatcher::dispatch`] here.
    pub(crate) fn route(&self, action: RawAction, ctx: Ctx) -> Result<BoxFuture, ActionError> {
        match self.handlers.get(&action.action_type) {
            Some(handler) => Ok(handler(action, ctx, &NOTHING)),
            None => Err(self.unknown(&action.action_type)),
        }
    }

    /// Handles a typed action in-process, with no NATS: for unit tests and embedding.
    /// Goes through the same decoding and routing as a received action.
    pub async fn process<T: ActionPayload>(
        &self,
        action: Action<T>,
    ) -> Result<T::Output, ActionError> {
        let raw = action.into_raw()?;
        let ctx = Ctx::for_action(&raw, 1, None, CancellationToken::new());
        let output = self.dispatch(raw, ctx).await?;
        serde_json::from_str(output.get()).map_err(|err| {
            ActionError::invalid(format!(
                "output does not fit {}: {err}",
                std::any::type_name::<T::Output>()
            ))
        })
    }
}

/// The `handler_panic` error a caught panic becomes.
pub(crate) fn panic_error(panic: &(dyn std::any::Any + Send)) -> ActionError {
    ActionError::new(
        ErrorCode::HandlerPanic,
        format!("handler panicked: {}", panic_message(panic)),
    )
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TenantId;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    struct Add {
        a: i64,
        b: i64,
    }
    impl ActionPayload for Add {
        const ACTION_TYPE: &'static str = "calc.add";
        type Output = i64;
    }

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    struct Boom;
    impl ActionPayload for Boom {
        const ACTION_TYPE: &'static str = "calc.boom";
        type Output = ();
    }

    #[derive(Debug, Serialize, Deserialize, JsonSchema)]
    struct Other;
    impl ActionPayload for Other {
        const ACTION_TYPE: &'static str = "other.thing";
        type Output = ();
    }

    async fn add(action: Action<Add>, _: Ctx) -> Result<i64, ActionError> {
        Ok(action.data.a + action.data.b)
    }

    async fn boom(_: Action<Boom>, _: Ctx) -> Result<(), ActionError> {
        panic!("kaboom")
    }

    fn calc() -> Dispatcher {
        Dispatcher::new("calc")
            .on::<Add, _>(add)
            .on::<Boom, _>(boom)
    }

    fn acme() -> TenantId {
        TenantId::new("acme").unwrap()
    }

    #[test]
    fn a_capacity_is_kept_with_the_state_and_never_zero() {
        assert_eq!(calc().capacity(), None);
        let stated = Dispatcher::<u8>::new("calc").with_capacity(2).with_state(7);
        assert_eq!(stated.capacity(), Some(2));
        assert_eq!(calc().with_capacity(0).clone().capacity(), Some(1));
    }

    #[tokio::test]
    async fn routes_by_type() {
        assert_eq!(
            calc()
                .process(Action::new(acme(), Add { a: 2, b: 3 }))
                .await,
            Ok(5)
        );
    }

    #[tokio::test]
    async fn panics_become_errors() {
        let err = calc().process(Action::new(acme(), Boom)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::HandlerPanic);
        assert!(err.message.contains("kaboom"));
    }

    #[tokio::test]
    async fn unknown_types_and_bad_data_are_named() {
        let mut raw = Action::new(acme(), Add { a: 1, b: 1 }).into_raw().unwrap();
        raw.action_type = ActionType::new("calc.sub").unwrap();
        let ctx = Ctx::for_action(&raw, 1, None, CancellationToken::new());
        let err = calc().dispatch(raw, ctx).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::UnknownActionType);
        assert!(err.message.contains("calc.add"), "{}", err.message);

        let mut raw = Action::new(acme(), Add { a: 1, b: 1 }).into_raw().unwrap();
        raw.data = RawValue::from_string("\"nope\"".into()).unwrap();
        let ctx = Ctx::for_action(&raw, 1, None, CancellationToken::new());
        assert_eq!(
            calc().dispatch(raw, ctx).await.unwrap_err().code,
            ErrorCode::InvalidAction
        );
    }

    struct Offset(i64);

    async fn add_offset(
        action: Action<Add>,
        _: Ctx,
        offset: Arc<Offset>,
    ) -> Result<i64, ActionError> {
        Ok(action.data.a + action.data.b + offset.0)
    }

    #[tokio::test]
    async fn typed_state_is_handed_to_its_handlers() {
        let calc = Dispatcher::new("calc")
            .on::<Add, _>(add_offset)
            .on::<Boom, _>(boom_with_state)
            .with_state(Offset(100));
        let sum = calc.process(Action::new(acme(), Add { a: 2, b: 3 })).await;
        assert_eq!(sum, Ok(105));
        let err = calc.process(Action::new(acme(), Boom)).await.unwrap_err();
        assert!(err.message.contains("offset 100"), "{err}");
    }

    async fn boom_with_state(_: Action<Boom>, _: Ctx, n: Arc<Offset>) -> Result<(), ActionError> {
        Err(ActionError::handler(format!("offset {}", n.0)))
    }

    #[test]
    #[should_panic(expected = "cannot be handled by the calc dispatcher")]
    fn refuses_foreign_types() {
        let _: Dispatcher =
            Dispatcher::new("calc").on::<Other, _>(|_: Action<Other>, _: Ctx| async { Ok(()) });
    }

    #[test]
    #[should_panic(expected = "two handlers")]
    fn refuses_double_registration() {
        let _ = calc().on::<Add, _>(add);
    }
}
