"""The provider search index (whoosh): schema, writer and searcher. Imports no Flask."""
