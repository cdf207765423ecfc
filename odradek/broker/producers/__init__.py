"""Producer ids: blocks allocated through the metadata log, handed to producers."""
