# Runs the Cloudmanager client as the board's main loop (written by provisioning).
# To run your own program too, see firmware/README.md ("Beside your own program").
import time
import cm

client = cm.start()
while True:
    idle = client.step(1000)
    if idle:
        time.sleep_ms(min(idle, 1000))
