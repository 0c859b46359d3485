#!/bin/sh
# Package scripts must not start services at build time; lab starts daemons itself.
exit 101
