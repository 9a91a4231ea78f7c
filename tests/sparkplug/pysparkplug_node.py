"""An edge node built on pysparkplug (a Sparkplug B library from PyPI), run by the interpreter of the test
tools' own virtualenv (.venv-sparkplug: pysparkplug needs paho-mqtt 1, the project runs paho-mqtt 2).

It connects with the node's broker account, which publishes its NBIRTH and the DBIRTH of one device, then
obeys lines on stdin: `data VALUE` publishes a DDATA of the device's voltage, `stop` disconnects cleanly
(an NDEATH); killing it leaves the broker to publish its will. Usage: python pysparkplug_node.py HOST PORT USERNAME PASSWORD GROUP EDGE_NODE DEVICE
"""

import sys

import pysparkplug as psp


def main() -> None:
    host, port, username, password, group, edge_node, device = sys.argv[1:8]
    node = psp.EdgeNode(
        group_id=group,
        edge_node_id=edge_node,
        metrics=[
            psp.Metric(
                timestamp=psp.get_current_timestamp(),
                name="Properties/Firmware",
                datatype=psp.DataType.STRING,
                value="1.0",
            )
        ],
        client=psp.Client(client_id=f"{group}-{edge_node}-pysparkplug", username=username, password=password),
    )
    voltage = "Inputs/Voltage_DC"
    node.register(
        psp.Device(
            device_id=device,
            metrics=[
                psp.Metric(
                    timestamp=psp.get_current_timestamp(), name=voltage, datatype=psp.DataType.DOUBLE, value=750.0
                )
            ],
        )
    )
    node.connect(host, port=int(port), blocking=False)
    print("started", flush=True)
    # Sparkplug timestamps are milliseconds: two lines read in one millisecond would give the sensor two
    # readings at one time, which the backend stores once (the second is a duplicate). Each data message
    # gets a later time than the one before, as readings of a real metric do.
    last_ts = 0
    for line in sys.stdin:
        command, *args = line.split()
        if command == "data":
            last_ts = max(psp.get_current_timestamp(), last_ts + 1)
            metric = psp.Metric(timestamp=last_ts, name=voltage, datatype=psp.DataType.DOUBLE, value=float(args[0]))
            node.update_device(device, [metric])
            print("sent", flush=True)
        elif command == "stop":
            node.disconnect()
            print("stopped", flush=True)
            return


if __name__ == "__main__":
    main()
