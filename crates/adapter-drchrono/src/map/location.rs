//! `/api/offices` → US Core Location, one for the office and one per exam room.

use adapter::fhir::resources::Location;
use adapter::systems;

use super::codes::{PhysicalType, Telecom};
use super::contact::{address, telecom};
use super::ids::LocationId;
use super::{DrCtx, MapError, concept, fhir_id, fhir_text, ids, meta, native_identifier, reference, time};
use crate::wire;

/// Maps an office to a Location (`physicalType` building).
///
/// - `status`: `inactive` when `archived`, else `active`.
/// - `name`: the office name; an unnamed office is called "Office {id}" (US Core requires a name).
/// - `address`, `telecom` (phone, fax); no `managingOrganization` (DrChrono has no organisation
///   object to point at).
/// - `meta.lastUpdated`: `updated_at` if sent (the documents list none), else the mapping's `now`.
pub fn office_location(o: &wire::Office, ctx: &DrCtx) -> Result<Location, MapError> {
    if o.id <= 0 {
        return Err(MapError::Missing { field: "id" });
    }
    let native = ids::location(&LocationId::Office(o.id));
    let tz = ctx.tz_for(o.doctor);
    let updated = time::timestamp_field("updated_at", &o.updated_at, tz)?;
    Ok(Location {
        id: Some(fhir_id("id", &native)?.into()),
        meta: Some(Box::new(meta(
            ctx,
            tz,
            updated,
            Some(systems::PROFILE_US_CORE_LOCATION),
        ))),
        identifier: vec![native_identifier(ids::kind::LOCATION, &native)],
        status: Some(status(o).into()),
        name: Some(fhir_text(&o.name).unwrap_or_else(|| format!("Office {}", o.id).into())),
        mode: Some("instance".into()),
        telecom: telecom(&[(Telecom::WorkPhone, &o.phone_number), (Telecom::WorkFax, &o.fax_number)]),
        address: office_address(o).map(Box::new),
        physical_type: Some(Box::new(concept(vec![PhysicalType::Building.code().coding()], None))),
        ..Default::default()
    })
}

/// Maps one exam room of an office to a Location (`physicalType` room, `partOf` the office).
///
/// The room shares the office's `status` and `address`; an unnamed room is called
/// "Exam room {index}". `room.index` must be the room's 1-based index (as the wire types fill it).
pub fn exam_room_location(o: &wire::Office, room: &wire::ExamRoom, ctx: &DrCtx) -> Result<Location, MapError> {
    if o.id <= 0 {
        return Err(MapError::Missing { field: "id" });
    }
    if room.index <= 0 {
        return Err(MapError::Invalid {
            field: "exam_rooms.index",
            expected: "1-based index",
        });
    }
    let native = ids::location(&LocationId::ExamRoom {
        office: o.id,
        index: room.index,
    });
    let tz = ctx.tz_for(o.doctor);
    let updated = time::timestamp_field("updated_at", &o.updated_at, tz)?;
    Ok(Location {
        id: Some(fhir_id("exam_rooms.index", &native)?.into()),
        meta: Some(Box::new(meta(
            ctx,
            tz,
            updated,
            Some(systems::PROFILE_US_CORE_LOCATION),
        ))),
        identifier: vec![native_identifier(ids::kind::LOCATION, &native)],
        status: Some(status(o).into()),
        name: Some(fhir_text(&room.name).unwrap_or_else(|| format!("Exam room {}", room.index).into())),
        mode: Some("instance".into()),
        address: office_address(o).map(Box::new),
        physical_type: Some(Box::new(concept(vec![PhysicalType::Room.code().coding()], None))),
        part_of: Some(Box::new(reference(
            "id",
            "Location",
            &ids::location(&LocationId::Office(o.id)),
        )?)),
        ..Default::default()
    })
}

/// The office's Location followed by one Location per exam room, in the vendor's order.
pub fn office_locations(o: &wire::Office, ctx: &DrCtx) -> Result<Vec<Location>, MapError> {
    let mut out = vec![office_location(o, ctx)?];
    for room in &o.exam_rooms {
        out.push(exam_room_location(o, room, ctx)?);
    }
    Ok(out)
}

fn status(o: &wire::Office) -> &'static str {
    if o.archived { "inactive" } else { "active" }
}

fn office_address(o: &wire::Office) -> Option<adapter::fhir::types::Address> {
    address(&o.address, &o.city, &o.state, &o.zip_code, &o.country, Some("work"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::test_ctx;

    #[test]
    fn a_room_needs_a_positive_index_and_an_office_an_id() {
        let office: wire::Office = serde_json::from_value(serde_json::json!({"id": 7})).unwrap();
        let room = wire::ExamRoom::default();
        assert!(matches!(
            exam_room_location(&office, &room, &test_ctx()),
            Err(MapError::Invalid {
                field: "exam_rooms.index",
                ..
            })
        ));
        let nameless = wire::Office::default();
        assert_eq!(
            office_location(&nameless, &test_ctx()),
            Err(MapError::Missing { field: "id" })
        );
    }

    #[test]
    fn office_locations_lists_the_office_then_its_rooms() {
        let office: wire::Office = serde_json::from_value(serde_json::json!({
            "id": 7, "exam_rooms": [{"name": "A"}, {"name": "B"}]
        }))
        .unwrap();
        let ids: Vec<_> = office_locations(&office, &test_ctx())
            .unwrap()
            .into_iter()
            .map(|l| l.id.unwrap().value.unwrap())
            .collect();
        assert_eq!(ids, ["drchrono-7", "drchrono-7-room-1", "drchrono-7-room-2"]);
    }
}
