"""Authenticate, subscribe, print ticks, ask for a backfill:
python docs/example_client.py "$(tickfan token --sub me)"   (the same script as in README.md)"""
import asyncio, json, sys, websockets
from tickfan.batch_codec import decode_batch

async def main(token):
    async with websockets.connect("ws://127.0.0.1:8000/ws/market-data") as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        print(await ws.recv())                                        # auth_success
        await ws.send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD", "ETH/USD"]}))
        await ws.send(json.dumps({"type": "backfill_request", "symbols": ["BTC/USD"], "since": 0}))
        async for raw in ws:
            msg = json.loads(raw)
            ticks = decode_batch(msg) if msg["type"] == "market_data_batch" else [msg]
            for t in ticks: print(t)

asyncio.run(main(sys.argv[1]))
