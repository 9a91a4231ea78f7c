"""The demo plant that `make run` and `make seed` build (`manage.py seed_demo`): `plant.py` describes it and
creates what is missing of it through the services of locations, devices, thresholds and accounts;
`device_keys.py` keeps the file of ingest keys the simulator reads; `simulator.py` (`manage.py simulate`)
plays the demo devices over MQTT or HTTP, and `incident.py` schedules the scripted incident it plays. The app sits above every domain app and
nothing imports it, so the configuration apps (locations, devices, thresholds) import no later app."""
