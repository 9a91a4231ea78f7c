"""Readings without a foreign key to sensors: the key's check ran for every inserted reading and was half the
cost of the store step's INSERT. What it guaranteed is kept another way (apps/ingest/sensor_deletion.py):

- a batch holds a shared advisory lock (key 5_240_012) from its first statement, and its INSERT counts the batch's
  sensors that still exist, in the same statement, after the lock is held: a sensor deleted before that is
  seen, and the batch is resolved afresh (deletions through the ORM take the lock earlier, in a pre_delete
  signal: apps/ingest/sensor_deletion.py);
- deleting sensors (the ORM, SQL, a cascade from their device) fires a statement trigger that deletes their
  readings, then takes the lock exclusively, which waits for the batches still storing, and deletes what they
  stored for those sensors. Batches that start later wait for the deleting transaction, then find the
  sensors gone.

The bulk of a sensor's history is deleted before the lock is taken, so ingest waits only for the stragglers.
Backwards, readings of sensors that no longer exist are deleted and the key is made again.
"""

from django.db import migrations

TABLE = "ingest_reading"
LOCK = 5_240_012

FORWARD = [
    # The parent's key (its partitions' copies go with it), then any key a partition has of its own (a table
    # attached with its own key); TimescaleDB chunks follow their hypertable.
    f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS {TABLE}_sensor_fk",
    f"""
    DO $$
    DECLARE c record;
    BEGIN
        FOR c IN
            SELECT con.conname, con.conrelid::regclass AS rel
              FROM pg_constraint con
              JOIN pg_class rel ON rel.oid = con.conrelid
             WHERE con.contype = 'f' AND con.confrelid = 'devices_sensor'::regclass AND con.conparentid = 0
               AND (con.conrelid = '{TABLE}'::regclass OR (rel.relispartition AND con.conrelid IN (
                    SELECT inhrelid FROM pg_inherits WHERE inhparent = '{TABLE}'::regclass)))
        LOOP
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.rel, c.conname);
        END LOOP;
    END $$
    """,
    f"""
    CREATE FUNCTION ingest_readings_of_deleted_sensors() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- "= ANY (array)": an index condition on every partition's key, whatever the planner thinks of `gone`.
        DELETE FROM {TABLE} WHERE sensor_id = ANY (ARRAY(SELECT id FROM gone));
        PERFORM pg_advisory_xact_lock({LOCK});
        DELETE FROM {TABLE} WHERE sensor_id = ANY (ARRAY(SELECT id FROM gone));
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER ingest_readings_of_deleted_sensors AFTER DELETE ON devices_sensor
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION ingest_readings_of_deleted_sensors()
    """,
]

BACKWARD = [
    "DROP TRIGGER IF EXISTS ingest_readings_of_deleted_sensors ON devices_sensor",
    "DROP FUNCTION IF EXISTS ingest_readings_of_deleted_sensors()",
    f"DELETE FROM {TABLE} r WHERE NOT EXISTS (SELECT 1 FROM devices_sensor s WHERE s.id = r.sensor_id)",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_sensor_fk FOREIGN KEY (sensor_id)"
    " REFERENCES devices_sensor (id) ON DELETE CASCADE",
]


class Migration(migrations.Migration):
    dependencies = [("ingest", "0007_stored_sensor_ids_field"), ("devices", "__first__")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
