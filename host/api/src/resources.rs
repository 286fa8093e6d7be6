//! Generic CRUD for the entities of the data model. Each entity implements [`Resource`]
//! (in `entities.rs`); the handlers, the audit rows, the delete-impact check (409 with the
//! references) and the OpenAPI paths are written once here.

use std::future::Future;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use store::{Page, Paged, ResourceKind, Store, StoreError, Tx};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::{AllOfBuilder, ContentBuilder, ObjectBuilder, Ref, RefOr, Required, ResponseBuilder, Schema, Type};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::entities;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Created, Data, Deleted, Json, List, ListMeta, PageQuery, PathParams, Query};
use crate::AppState;

/// Write-only secrets that changed, named in the audit row without their values.
pub(crate) type SecretNames = Vec<&'static str>;

/// One entity type of the REST API.
pub(crate) trait Resource: Send + Sync + 'static {
    /// Path under /api/v1 ("/extensions").
    const PATH: &'static str;
    const KIND: ResourceKind;
    /// Singular label for messages ("extension").
    const LABEL: &'static str;
    /// The input fields a create needs (an update keeps what is absent); the OpenAPI
    /// document's create body requires them.
    const CREATE_REQUIRED: &'static [&'static str];
    /// What a create needs besides, by the value of one field: `(field, value, needed)` (a
    /// registration trunk needs its host and credentials, an IP trunk its addresses). The
    /// create body's schema states them as a `oneOf` of those cases.
    const CREATE_REQUIRED_WHEN: &'static [(&'static str, &'static str, &'static [&'static str])] = &[];
    type Row: Serialize + ToSchema + Send + Sync;
    /// What GET, lists, create and update show: the row itself, or the row with live
    /// read-only fields (`views.rs`: registration counts, trunk status, message counts).
    type Item: Serialize + ToSchema + Send;
    type Input: DeserializeOwned + ToSchema + Send;
    /// Validated values, ready to write.
    type Prepared: Send + Sync;

    fn id(row: &Self::Row) -> i64;
    fn list(store: &Store, page: Page) -> impl Future<Output = Result<Paged<Self::Row>, StoreError>> + Send;
    /// Rows as the API shows them ([`Resource::Item`]); [`rows_as_is!`] when that is the row.
    fn view(state: &AppState, rows: Vec<Self::Row>) -> impl Future<Output = ApiResult<Vec<Self::Item>>> + Send;
    fn get(store: &Store, id: i64) -> impl Future<Output = Result<Option<Self::Row>, StoreError>> + Send;
    /// Merges the input over the current row (None on create) and validates the whole.
    fn prepare(state: &AppState, input: Self::Input, current: Option<&Self::Row>) -> impl Future<Output = ApiResult<(Self::Prepared, SecretNames)>> + Send;
    fn insert(tx: &mut Tx, p: &Self::Prepared) -> impl Future<Output = Result<Self::Row, StoreError>> + Send;
    fn update(tx: &mut Tx, id: i64, p: &Self::Prepared) -> impl Future<Output = Result<Self::Row, StoreError>> + Send;
    fn delete(tx: &mut Tx, id: i64) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The [`Resource::view`] of an entity shown as stored.
macro_rules! rows_as_is {
    () => {
        async fn view(_state: &AppState, rows: Vec<Self::Row>) -> ApiResult<Vec<Self::Item>> {
            Ok(rows)
        }
    };
}
pub(crate) use rows_as_is;

async fn view_one<R: Resource>(state: &AppState, row: R::Row) -> ApiResult<R::Item> {
    R::view(state, vec![row]).await?.pop().ok_or_else(|| ApiError::internal("a view lost its row"))
}

fn audit_json<T: Serialize>(row: &T, secrets: &SecretNames) -> serde_json::Value {
    let mut v = serde_json::to_value(row).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        for s in secrets {
            obj.insert((*s).to_owned(), serde_json::Value::String("(changed)".into()));
        }
    }
    v
}

async fn list<R: Resource>(State(state): State<AppState>, Query(q): Query<PageQuery>) -> ApiResult<List<R::Item>> {
    let page = q.page()?;
    let p = R::list(state.store(), page).await?;
    let items = R::view(&state, p.items).await?;
    Ok(List { data: items, meta: ListMeta { total: p.total, limit: page.limit, offset: page.offset } })
}

async fn get_one<R: Resource>(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<R::Item>> {
    let row = R::get(state.store(), id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data::new(view_one::<R>(&state, row).await?))
}

async fn create<R: Resource>(State(state): State<AppState>, caller: Caller, Json(input): Json<R::Input>) -> ApiResult<Created<R::Item>> {
    let (prepared, secrets) = R::prepare(&state, input, None).await?;
    let mut tx = state.store().begin().await?;
    let row = R::insert(&mut tx, &prepared).await?;
    let id = R::id(&row).to_string();
    tx.audit(&caller.actor(), "create", R::KIND.as_str(), Some(&id), None, Some(&audit_json(&row, &secrets))).await?;
    tx.commit().await?;
    state.entity_changed(R::KIND, R::id(&row)).await;
    Ok(Created(view_one::<R>(&state, row).await?))
}

async fn update<R: Resource>(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<i64>,
    Json(input): Json<R::Input>,
) -> ApiResult<Data<R::Item>> {
    let current = R::get(state.store(), id).await?.ok_or(ApiError::NotFound)?;
    let (prepared, secrets) = R::prepare(&state, input, Some(&current)).await?;
    let mut tx = state.store().begin().await?;
    let row = R::update(&mut tx, id, &prepared).await?;
    tx.audit(&caller.actor(), "update", R::KIND.as_str(), Some(&id.to_string()), Some(&audit_json(&current, &vec![])), Some(&audit_json(&row, &secrets)))
        .await?;
    tx.commit().await?;
    state.entity_changed(R::KIND, id).await;
    Ok(Data::new(view_one::<R>(&state, row).await?))
}

async fn delete<R: Resource>(State(state): State<AppState>, caller: Caller, PathParams(id): PathParams<i64>) -> ApiResult<Data<Deleted>> {
    let current = R::get(state.store(), id).await?.ok_or(ApiError::NotFound)?;
    let mut tx = state.store().begin().await?;
    // checked inside the write transaction, so nothing can add a reference in between
    let refs = tx.references().to(R::KIND, id).await?;
    if !refs.is_empty() {
        return Err(ApiError::Conflict { message: in_use_message(R::LABEL, &refs), references: refs });
    }
    if !R::delete(&mut tx, id).await? {
        return Err(ApiError::NotFound);
    }
    tx.audit(&caller.actor(), "delete", R::KIND.as_str(), Some(&id.to_string()), Some(&audit_json(&current, &vec![])), None).await?;
    tx.commit().await?;
    state.entity_changed(R::KIND, id).await;
    Ok(Data::new(Deleted { id, deleted: true }))
}

/// Why an entity cannot be deleted, for a person: a live flow version running with it comes
/// first (calls use it now; it goes once a version without it is published), then the rest.
pub(crate) fn in_use_message(label: &str, refs: &[store::Reference]) -> String {
    let live: Vec<String> = refs
        .iter()
        .filter_map(|r| {
            let version = r.via.strip_prefix("published:v")?.split(':').next()?;
            Some(format!("\"{}\" (version {version})", r.name))
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if live.is_empty() {
        let places = if refs.len() == 1 { "1 place".to_owned() } else { format!("{} places", refs.len()) };
        format!("the {label} is still in use ({places}): remove it from there first")
    } else {
        format!(
            "the {label} is used by the live version of {} {}: calls run with it. Publish {} without it first, then delete it ({} references)",
            if live.len() == 1 { "flow" } else { "flows" },
            live.join(", "),
            if live.len() == 1 { "a version" } else { "versions" },
            refs.len()
        )
    }
}

/// What uses the entity now (what a delete would be refused for): the editor says so before
/// asking to confirm a delete.
async fn references<R: Resource>(State(state): State<AppState>, PathParams(id): PathParams<i64>) -> ApiResult<Data<Vec<store::Reference>>> {
    R::get(state.store(), id).await?.ok_or(ApiError::NotFound)?;
    Ok(Data::new(state.store().references().to(R::KIND, id).await?))
}

fn resource_routes<R: Resource>() -> Router<AppState> {
    Router::new()
        .route(R::PATH, get(list::<R>).post(create::<R>))
        .route(&format!("{}/{{id}}", R::PATH), get(get_one::<R>).put(update::<R>).delete(delete::<R>))
        .route(&format!("{}/{{id}}/references", R::PATH), get(references::<R>))
}

/// Every entity's CRUD routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(resource_routes::<entities::Extensions>())
        .merge(resource_routes::<entities::Trunks>())
        .merge(resource_routes::<entities::OutboundRoutes>())
        .merge(resource_routes::<entities::Numbers>())
        .merge(resource_routes::<entities::VoicemailBoxes>())
        .merge(resource_routes::<entities::RingGroups>())
        .merge(resource_routes::<entities::IvrMenus>())
        .merge(resource_routes::<entities::TimeSwitches>())
        .merge(resource_routes::<entities::Conferences>())
        .merge(resource_routes::<entities::Flows>())
}

// ---------------------------------------------------------------------------------------------
// OpenAPI for the generic routes

fn envelope(schema: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new().property("data", schema).required("data").into()
}

fn list_envelope(item: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("data", utoipa::openapi::ArrayBuilder::new().items(item))
        .property("meta", Ref::from_schema_name("ListMeta"))
        .required("data")
        .required("meta")
        .into()
}

fn json_response(desc: &str, schema: RefOr<Schema>) -> utoipa::openapi::Response {
    ResponseBuilder::new().description(desc).content("application/json", ContentBuilder::new().schema(Some(schema)).build()).build()
}

fn error_response(desc: &str) -> utoipa::openapi::Response {
    json_response(desc, Ref::from_schema_name("ErrorEnvelope").into())
}

fn id_param() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .schema(Some(
            ObjectBuilder::new().schema_type(Type::Integer).format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64))),
        ))
        .build()
}

/// What a create adds to an input's schema: the fields it needs are present and not null
/// (an input's fields are nullable because an update may leave them out, and a null required
/// field is as missing as an absent one).
fn create_required<I: ToSchema>(fields: &[&str]) -> Schema {
    let input = match <I as utoipa::PartialSchema>::schema() {
        RefOr::T(Schema::Object(o)) => Some(o),
        _ => None,
    };
    let mut o = ObjectBuilder::new().schema_type(Type::Object);
    for f in fields {
        o = o.required(*f);
        if let Some(p) = input.as_ref().and_then(|i| i.properties.get(*f)).and_then(not_null) {
            o = o.property(*f, p);
        }
    }
    o.build().into()
}

/// A property's schema without its `null` alternative, when it has one.
fn not_null(p: &RefOr<Schema>) -> Option<RefOr<Schema>> {
    let without_null = |t: &SchemaType| match t {
        SchemaType::Array(types) if types.contains(&Type::Null) => {
            let rest: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
            Some(if rest.len() == 1 { SchemaType::Type(rest[0].clone()) } else { SchemaType::Array(rest) })
        }
        _ => None,
    };
    match p {
        RefOr::T(Schema::Object(o)) => without_null(&o.schema_type).map(|t| {
            let mut o = o.clone();
            o.schema_type = t;
            RefOr::T(Schema::Object(o))
        }),
        RefOr::T(Schema::Array(a)) => without_null(&a.schema_type).map(|t| {
            let mut a = a.clone();
            a.schema_type = t;
            RefOr::T(Schema::Array(a))
        }),
        RefOr::T(Schema::OneOf(one)) => {
            let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
            let mut rest = one.items.iter().filter(|s| !is_null(s));
            match (rest.next(), rest.next()) {
                (Some(only), None) if one.items.iter().any(is_null) => Some(only.clone()),
                _ => None,
            }
        }
        _ => None,
    }
}

fn page_params() -> Vec<utoipa::openapi::path::Parameter> {
    ["limit", "offset"]
        .iter()
        .map(|n| {
            ParameterBuilder::new()
                .name(*n)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .build()
        })
        .collect()
}

fn add_resource<R: Resource>(doc: &mut utoipa::openapi::OpenApi) {
    let comps = doc.components.get_or_insert_with(Default::default);
    let mut schemas = Vec::new();
    <R::Row as ToSchema>::schemas(&mut schemas);
    <R::Input as ToSchema>::schemas(&mut schemas);
    <R::Item as ToSchema>::schemas(&mut schemas);
    schemas.push((<R::Row as ToSchema>::name().into_owned(), <R::Row as utoipa::PartialSchema>::schema()));
    schemas.push((<R::Item as ToSchema>::name().into_owned(), <R::Item as utoipa::PartialSchema>::schema()));
    schemas.push((<R::Input as ToSchema>::name().into_owned(), <R::Input as utoipa::PartialSchema>::schema()));
    for (name, s) in schemas {
        comps.schemas.insert(name, s);
    }
    let item: RefOr<Schema> = Ref::from_schema_name(<R::Item as ToSchema>::name()).into();
    let input: RefOr<Schema> = Ref::from_schema_name(<R::Input as ToSchema>::name()).into();
    let tag = R::PATH.trim_start_matches('/');
    let body = |schema: RefOr<Schema>| {
        RequestBodyBuilder::new().content("application/json", ContentBuilder::new().schema(Some(schema)).build()).required(Some(Required::True)).build()
    };
    // a create: the input with the fields a create needs required
    let mut all_of = AllOfBuilder::new().item(input.clone()).item(create_required::<R::Input>(R::CREATE_REQUIRED));
    if !R::CREATE_REQUIRED_WHEN.is_empty() {
        let mut cases = utoipa::openapi::OneOfBuilder::new();
        for (field, value, needed) in R::CREATE_REQUIRED_WHEN {
            let mut o = ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(*field, ObjectBuilder::new().schema_type(Type::String).enum_values(Some([*value])))
                .required(*field);
            for n in *needed {
                o = o.required(*n);
            }
            cases = cases.item(o);
        }
        all_of = all_of.item(Schema::OneOf(cases.build()));
    }
    let create_schema: RefOr<Schema> = Schema::AllOf(all_of.build()).into();
    let op = |id: String, summary: String| OperationBuilder::new().operation_id(Some(id)).summary(Some(summary)).tag(tag);

    let list_op = op(format!("list_{tag}"), format!("List {}s", R::LABEL))
        .parameters(Some(page_params()))
        .response("200", json_response("a page", list_envelope(item.clone())))
        .response("400", error_response("bad pagination"))
        .build();
    let create_op = op(format!("create_{tag}"), format!("Create a {}", R::LABEL))
        .request_body(Some(body(create_schema)))
        .response("201", json_response("created", envelope(item.clone())))
        .response("422", error_response("invalid field"))
        .build();
    let get_op = op(format!("get_{tag}"), format!("Get a {}", R::LABEL))
        .parameter(id_param())
        .response("200", json_response("found", envelope(item.clone())))
        .response("404", error_response("no such id"))
        .build();
    let update_op = op(format!("update_{tag}"), format!("Update a {} (absent fields are kept)", R::LABEL))
        .parameter(id_param())
        .request_body(Some(body(input.clone())))
        .response("200", json_response("updated", envelope(item.clone())))
        .response("404", error_response("no such id"))
        .response("422", error_response("invalid field"))
        .build();
    let delete_op = op(format!("delete_{tag}"), format!("Delete a {}", R::LABEL))
        .parameter(id_param())
        .response("200", json_response("deleted", envelope(Ref::from_schema_name("Deleted").into())))
        .response("404", error_response("no such id"))
        .response("409", error_response("still referenced; error.references lists by what"))
        .build();

    let refs_op = op(format!("references_{tag}"), format!("What uses a {} (a delete is refused while anything does)", R::LABEL))
        .parameter(id_param())
        .response(
            "200",
            json_response(
                "what refers to it; empty: it can be deleted",
                envelope(utoipa::openapi::ArrayBuilder::new().items(Ref::from_schema_name("Reference")).into()),
            ),
        )
        .response("404", error_response("no such id"))
        .build();

    let mut coll = PathItem::new(HttpMethod::Get, list_op);
    coll.post = Some(create_op);
    let mut item = PathItem::new(HttpMethod::Get, get_op);
    item.put = Some(update_op);
    item.delete = Some(delete_op);
    doc.paths.paths.insert(format!("/api/v1{}", R::PATH), coll);
    doc.paths.paths.insert(format!("/api/v1{}/{{id}}", R::PATH), item);
    doc.paths.paths.insert(format!("/api/v1{}/{{id}}/references", R::PATH), PathItem::new(HttpMethod::Get, refs_op));
}

/// Adds every generic resource's paths and schemas to the document.
pub(crate) fn document(doc: &mut utoipa::openapi::OpenApi) {
    add_resource::<entities::Extensions>(doc);
    add_resource::<entities::Trunks>(doc);
    add_resource::<entities::OutboundRoutes>(doc);
    add_resource::<entities::Numbers>(doc);
    add_resource::<entities::VoicemailBoxes>(doc);
    add_resource::<entities::RingGroups>(doc);
    add_resource::<entities::IvrMenus>(doc);
    add_resource::<entities::TimeSwitches>(doc);
    add_resource::<entities::Conferences>(doc);
    add_resource::<entities::Flows>(doc);
}

#[cfg(test)]
mod tests {
    use super::in_use_message;
    use store::Reference;

    #[test]
    fn a_live_version_using_an_entity_is_named_first() {
        let r = |via: &str, name: &str| Reference { entity_type: "call_flow".into(), entity_id: 1, name: name.into(), via: via.into() };
        let refs = [r("node:n1", "Main line"), r("published:v3:node:n1", "Main line")];
        assert_eq!(
            in_use_message("IVR menu", &refs),
            "the IVR menu is used by the live version of flow \"Main line\" (version 3): calls run with it. Publish a version without it first, then delete it (2 references)"
        );
        assert_eq!(in_use_message("IVR menu", &refs[..1]), "the IVR menu is still in use (1 place): remove it from there first");
    }
}
