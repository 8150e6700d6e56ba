"""Subscribe to BTC/USD and print ticks: python docs/example_client.py "$(tickfan token --sub alice)" """
import asyncio, json, sys

from websockets.asyncio.client import connect


async def main(token: str) -> None:
    async with connect("ws://127.0.0.1:8000/ws/market-data") as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        print(await ws.recv())
        await ws.send(json.dumps({"type": "subscribe", "symbols": ["BTC/USD", "ETH/USD"], "mode": "auto"}))
        async for message in ws:
            print(message)

asyncio.run(main(sys.argv[1]))
