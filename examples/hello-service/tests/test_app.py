import json
import threading
import unittest
from urllib.request import urlopen

from hello.app import greeting, serve, version


class GreetingTest(unittest.TestCase):
    def test_greets_by_name(self):
        self.assertEqual(greeting("Ada"), "Hello, Ada!")

    def test_greets_the_world_without_a_name(self):
        self.assertEqual(greeting(None), "Hello, world!")
        self.assertEqual(greeting("   "), "Hello, world!")


class HttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = serve(0)
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def test_health_reports_the_version(self):
        with urlopen(self.url + "/health") as response:
            self.assertEqual(json.load(response), {"status": "ok", "version": version()})

    def test_hello_endpoint(self):
        with urlopen(self.url + "/hello?name=Grace") as response:
            self.assertEqual(response.read().decode().strip(), "Hello, Grace!")
