# Runs the Cloudmanager client beside your own asyncio program:
#
#   import asyncio, cm_async
#   asyncio.create_task(cm_async.task())
#
# Each step returns quickly without waiting for the network, so your tasks keep running;
# only connecting to an unreachable server can block for up to 10 s.
import asyncio
import cm


async def task():
    c = cm.start()
    while True:
        await asyncio.sleep_ms(min(c.step(0), 100))
