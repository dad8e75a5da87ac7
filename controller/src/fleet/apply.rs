//! Writes to the API server: server-side apply (forced, field manager
//! [`FIELD_MANAGER`]) of desired objects, and deletion of objects a gateway no longer has.

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use tollgate_crds::table::ObjectKey;

use super::desired::{FIELD_MANAGER, Kind, Object};

/// Applies `object` in `namespace`; fields the controller owns are put back as desired.
pub async fn apply(client: &Client, namespace: &str, object: &Object) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &object.kind.api_resource());
    api.patch(
        &object.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&object.body),
    )
    .await?;
    Ok(())
}

/// Deletes one object (its dependents in the background); gone already is fine.
pub async fn delete(client: &Client, kind: Kind, key: &ObjectKey) -> Result<(), kube::Error> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &key.namespace, &kind.api_resource());
    match api.delete(&key.name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
