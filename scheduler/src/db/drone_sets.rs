//! Drone sets (Autotest's): named groups of drones; a job with a drone set runs only on
//! the set's drones.

use super::schema::{drone_set_drones, drone_sets, drones};
use super::{Db, DbError};
use crate::{with_conn, write_txn};
use common::names::{DroneName, DroneSetName};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use std::collections::BTreeMap;

/// A drone set with its drones (sorted by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroneSetRow {
    pub name: String,
    pub drones: Vec<String>,
}

/// `atest drone-set create NAME --drones D1,D2`: every drone must be a configured one.
pub async fn create(
    db: &Db,
    name: &DroneSetName,
    members: &[DroneName],
) -> Result<DroneSetRow, DbError> {
    let name = name.as_str().to_string();
    let members: Vec<String> = members.iter().map(|d| d.to_string()).collect();
    write_txn!(db, |conn, last_id| {
        let exists: i64 = drone_sets::table
            .filter(drone_sets::name.eq(&name))
            .count()
            .get_result(conn)
            .await?;
        if exists > 0 {
            return Err(DbError::Conflict(format!(
                "drone set {name} exists already"
            )));
        }
        let known: Vec<String> = drones::table
            .filter(drones::name.eq_any(&members))
            .select(drones::name)
            .load(conn)
            .await?;
        if let Some(unknown) = members.iter().find(|d| !known.contains(d)) {
            return Err(DbError::NotFound(format!(
                "unknown drone: {unknown} (not in [SCHEDULER] drones)"
            )));
        }
        diesel::insert_into(drone_sets::table)
            .values(drone_sets::name.eq(&name))
            .execute(conn)
            .await?;
        let id: i64 = diesel::select(sql::<BigInt>(last_id))
            .get_result(conn)
            .await?;
        for drone in &members {
            diesel::insert_into(drone_set_drones::table)
                .values((
                    drone_set_drones::drone_set_id.eq(id),
                    drone_set_drones::drone.eq(drone),
                ))
                .execute(conn)
                .await?;
        }
        let mut drones = members.clone();
        drones.sort();
        Ok(DroneSetRow {
            name: name.clone(),
            drones,
        })
    })
}

/// Every drone set with its drones, by name.
pub async fn list(db: &Db) -> Result<Vec<DroneSetRow>, DbError> {
    let rows: Vec<(String, Option<String>)> = with_conn!(db, |conn| {
        drone_sets::table
            .left_join(
                drone_set_drones::table.on(drone_set_drones::drone_set_id.eq(drone_sets::id)),
            )
            .select((drone_sets::name, drone_set_drones::drone.nullable()))
            .load(conn)
            .await?
    });
    let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, drone) in rows {
        let drones = sets.entry(name).or_default();
        drones.extend(drone);
    }
    Ok(sets
        .into_iter()
        .map(|(name, mut drones)| {
            drones.sort();
            DroneSetRow { name, drones }
        })
        .collect())
}
