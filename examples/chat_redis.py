"""Two (or more) servers sharing one chat through Redis.

    redis-server --port 6379 &
    iodine examples/chat_redis.py -p 3000 -r redis://localhost:6379/0 &
    iodine examples/chat_redis.py -p 3001 -r redis://localhost:6379/0 &

Open http://localhost:3000 and http://localhost:3001 in two tabs: a message
typed in one appears in the other. The app is the plain chat example; the
`-r` flag makes Redis the default pub/sub engine, so every publish goes
through Redis and every server delivers it to its own subscribers.
"""
from chat import app  # noqa: F401  (the same app; -r changes only the engine)
