import java.io.IOException;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;
import com.almworks.sqlite4java.SQLiteConnection;
import com.almworks.sqlite4java.SQLiteJob;
import com.almworks.sqlite4java.SQLiteQueue;
import org.antlr.v4.runtime.ANTLRErrorListener;
import org.antlr.v4.runtime.Parser;
import org.antlr.v4.runtime.RecognitionException;
import org.antlr.v4.runtime.Recognizer;
import org.antlr.v4.runtime.atn.ATNConfigSet;
import org.antlr.v4.runtime.dfa.DFA;
import org.antlr.v4.runtime.tree.ParseTree;
import com.amazon.dynamodb.grammar.AbstractTwoStageExpressionParser;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.CommandLineInput;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;
import software.amazon.awssdk.services.dynamodb.model.TransactWriteItem;
import software.amazon.awssdk.services.dynamodb.model.TransactWriteItemsRequest;
import software.amazon.dynamodb.services.local.shared.access.TableInfo;
import software.amazon.dynamodb.services.local.shared.access.api.dp.TransactWriteItemsFunction;
import software.amazon.dynamodb.services.local.shared.access.sqlite.SQLiteDBAccess;
import software.amazon.dynamodb.services.local.shared.access.sqlite.TableSchemaInfo;
import software.amazon.dynamodb.services.local.shared.mapper.DynamoDbObjectMapper;

/**
 * DynamoDB Local bound to loopback only, and parsing each table's description once
 * (cacheTableSchemas); with the classes DynamoLocalPatches.java rewrites, also one object mapper
 * for every transaction, each expression parsed once and each table's description kept between
 * its changes (transactionMapper, parseExpression, tableInfo).
 * The jar has no host option: its DynamoDBProxyServer
 * builds `new org.eclipse.jetty.server.Server(port)`, whose connector listens on every
 * interface. This launcher takes the jar's own command line, builds the server the way the
 * jar's main does (ServerRunner.createServerFromCommandLineArgs), sets the host of every Jetty
 * connector to 127.0.0.1 (or -Dslipway.host) before the server starts, then starts it.
 *
 * Telemetry is never configured here, so none is sent whatever the flags say (the jar's main
 * would configure it unless -disableTelemetry). Run by infra/local/dynamodb.ts as a Java
 * single-file program:
 *   java -cp DynamoDBLocal.jar:DynamoDBLocal_lib/* infra/local/DynamoLoopback.java -port N ...
 * or from a class compiled once from this file.
 */
public class DynamoLoopback {
  public static void main(String[] args) throws Exception {
    String host = System.getProperty("slipway.host", "127.0.0.1");
    // -help and bad flags: the jar's own parser prints its usage; nothing is started.
    if (!new CommandLineInput(args).init()) return;
    cacheTableSchemas();
    reportPatches();
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    Field field = DynamoDBProxyServer.class.getDeclaredField("server");
    field.setAccessible(true);
    Server server = (Server) field.get(proxy);
    int bound = 0;
    for (Connector connector : server.getConnectors()) {
      if (!(connector instanceof ServerConnector)) {
        throw new IllegalStateException("unexpected Jetty connector " + connector.getClass().getName() + "; refusing to start on every interface");
      }
      ((ServerConnector) connector).setHost(host);
      bound++;
    }
    if (bound == 0) throw new IllegalStateException("DynamoDB Local has no Jetty connector to bind to " + host);
    proxy.start();
    System.out.println("DynamoLoopback: listening on " + host + " (" + bound + " connector" + (bound == 1 ? "" : "s") + ")");
  }

  /** Said on stderr when the jar's classes patched by DynamoLocalPatches.java are the ones loaded. */
  static final String PATCHED = "DynamoLoopback: transactions share one object mapper and are signed before the table lock; expressions parsed once; table descriptions kept; SQLite jobs run in the calling thread";

  /** -Dslipway.patches=false: the patched classes call the jar's own code, as shipped (to compare, or to rule the patches out). */
  static final boolean PATCHES = !"false".equals(System.getProperty("slipway.patches"));

  /**
   * Whether the classes DynamoLocalPatches.java rewrote are the ones this JVM loads: they sit next
   * to this class, ahead of the jar on the class path, when the patch step ran (dynamodb.ts);
   * otherwise the jar's own are loaded and nothing changes.
   */
  static void reportPatches() {
    if (!PATCHES) {
      System.err.println("DynamoLoopback: jar classes as shipped (-Dslipway.patches=false)");
      return;
    }
    try {
      // Run as a single-file source program (no class directory), this class has no location.
      var own = DynamoLoopback.class.getProtectionDomain().getCodeSource();
      Object here = own == null ? null : own.getLocation();
      List<String> shipped = new ArrayList<>();
      for (String name : new String[] {
        "software.amazon.dynamodb.services.local.shared.access.api.dp.TransactWriteItemsFunction",
        "com.amazon.dynamodb.grammar.DynamoDbExpressionParser",
        "software.amazon.dynamodb.services.local.shared.access.sqlite.SQLiteDBAccess",
        "com.almworks.sqlite4java.SQLiteQueue",
        "com.almworks.sqlite4java.SQLiteConnection",
      }) {
        var source = Class.forName(name, false, DynamoLoopback.class.getClassLoader()).getProtectionDomain().getCodeSource();
        if (here == null || source == null || !here.equals(source.getLocation())) shipped.add(name.substring(name.lastIndexOf('.') + 1));
      }
      if (!shipped.isEmpty()) System.err.println("DynamoLoopback: " + String.join(" and ", shipped) + " not patched; as shipped");
      else System.err.println(SQLITE_INLINE ? PATCHED : PATCHED.substring(0, PATCHED.lastIndexOf("; ")) + "; SQLite jobs in the queue's thread (-Dslipway.sqliteInline=false)");
    } catch (Throwable err) {
      System.err.println("DynamoLoopback: patched classes not checked (" + err + ")");
    }
  }

  /**
   * One mapper for every TransactWriteItems (DynamoLocalPatches.java: the jar's
   * TransactWriteItemsFunction built a new one per request). Building it registers its
   * deserializers, and a new mapper then introspects the request's classes again to serialize
   * the request's items once (the transaction's idempotency signature): together about a fifth of
   * DynamoDB Local's request time in a burst of lease starts (docs/fleet-scale.md). The function
   * only serializes with it, which an ObjectMapper does safely from many threads once configured.
   */
  private static final DynamoDbObjectMapper TRANSACTION_MAPPER = PATCHES ? new DynamoDbObjectMapper() : null;

  public static DynamoDbObjectMapper transactionMapper() {
    return PATCHES ? TRANSACTION_MAPPER : new DynamoDbObjectMapper();
  }

  /** TransactWriteItemsFunction's private validateRequest, which validateAndSign calls first (looked up on first use). */
  private static final class Validate {
    static final MethodHandle REQUEST = find();

    private static MethodHandle find() {
      try {
        return MethodHandles.privateLookupIn(TransactWriteItemsFunction.class, MethodHandles.lookup())
            .findVirtual(TransactWriteItemsFunction.class, "validateRequest", MethodType.methodType(void.class, TransactWriteItemsRequest.class));
      } catch (ReflectiveOperationException err) {
        return null;
      }
    }
  }

  /** The signature validateAndSign computed on this thread, and the items it is of. */
  private static final ThreadLocal<Object[]> SIGNED = new ThreadLocal<>();

  /**
   * A transaction's validation, and then its idempotency signature (DynamoLocalPatches.java puts
   * this in place of TransactWriteItemsFunction.apply's call to validateRequest). The jar
   * computes the signature (its items serialized with Jackson) in doWrite, with the table's write
   * lock held, which every write to the table waits for: in a burst of lease starts that was a
   * tenth of the time the lock was held. Computed here, before the lock, it is the same bytes;
   * transactionSignature hands it to doWrite.
   */
  public static void validateAndSign(TransactWriteItemsFunction fn, TransactWriteItemsRequest request) throws Throwable {
    MethodHandle validate = Validate.REQUEST;
    if (validate == null) throw new IllegalStateException("TransactWriteItemsFunction.validateRequest not found");
    validate.invokeExact(fn, request);
    SIGNED.remove();
    if (!PATCHES) return;
    List<TransactWriteItem> items = request.transactItems();
    SIGNED.set(new Object[] {items, fn.calculateTransactionSignature(items)});
  }

  /** In doWrite: the signature validateAndSign computed for these very items on this thread, or computed now. */
  public static byte[] transactionSignature(TransactWriteItemsFunction fn, List<TransactWriteItem> items) {
    Object[] signed = SIGNED.get();
    SIGNED.remove();
    if (signed != null && signed[0] == items) return (byte[]) signed[1];
    return fn.calculateTransactionSignature(items);
  }

  /** -Dslipway.parseCacheEntries=N: a smaller bound, for the test that fills it. */
  private static final int PARSE_CACHE_ENTRIES = Integer.getInteger("slipway.parseCacheEntries", 1024);
  private static final int PARSE_CACHE_CHARS = 256 * 1024;
  /** A longer text is parsed every time (DynamoDB refuses expressions over 4 KB anyway). */
  private static final int PARSE_CACHE_TEXT_CHARS = PARSE_CACHE_CHARS / 16;
  /** Per parser class (update, condition, projection, name key, value key), text → tree. */
  private static final ClassValue<ConcurrentHashMap<String, ParseTree>> PARSED = new ClassValue<>() {
    @Override
    protected ConcurrentHashMap<String, ParseTree> computeValue(Class<?> type) {
      ConcurrentHashMap<String, ParseTree> map = new ConcurrentHashMap<>();
      PARSED_MAPS.add(map);
      return map;
    }
  };
  private static final List<ConcurrentHashMap<String, ParseTree>> PARSED_MAPS = new java.util.concurrent.CopyOnWriteArrayList<>();
  /** Entries and characters kept, over every parser class. */
  private static final AtomicInteger parsedEntries = new AtomicInteger();
  private static final AtomicInteger parsedChars = new AtomicInteger();

  /**
   * Each expression's parse tree, kept once it parsed cleanly (DynamoLocalPatches.java routes
   * DynamoDbExpressionParser's calls here). The jar parses every condition and update expression
   * of every item twice per request (to measure the item, then to apply it), each time with a new
   * ANTLR lexer and parser, and each placeholder name and value key once more; Slipway's
   * expressions are few and fixed in shape (their values are placeholders). A tree is the same
   * for the same text; its one reader (the jar's ASTListener) only walks it, so one tree serves
   * every thread. Only a parse that called the error listener not at all is kept, so an
   * expression with a syntax error still meets the caller's listener every time. Bounded by
   * entries and by characters: the text is the caller's.
   */
  public static ParseTree parseExpression(AbstractTwoStageExpressionParser parser, String text, ANTLRErrorListener listener) {
    if (!PATCHES || text == null) return parser.parse(text, listener);
    ConcurrentHashMap<String, ParseTree> parsed = PARSED.get(parser.getClass());
    ParseTree hit = parsed.get(text);
    if (hit != null) return hit;
    Watched watched = new Watched(listener);
    ParseTree tree = parser.parse(text, watched);
    if (tree == null || watched.called || text.length() > PARSE_CACHE_TEXT_CHARS) return tree;
    // Over the bounds, every kept tree is dropped and the cache fills again with what is in use
    // (Slipway's expressions are a few dozen; only a client sending ever new ones gets here).
    if (parsedEntries.get() >= PARSE_CACHE_ENTRIES || parsedChars.get() + text.length() > PARSE_CACHE_CHARS) {
      synchronized (PARSED_MAPS) {
        for (ConcurrentHashMap<String, ParseTree> map : PARSED_MAPS) map.clear();
        parsedEntries.set(0);
        parsedChars.set(0);
      }
    }
    if (parsed.putIfAbsent(text, tree) == null) {
      parsedEntries.incrementAndGet();
      parsedChars.addAndGet(text.length());
    }
    return tree;
  }

  /** Passes every report on to the caller's listener, and remembers that there was one. */
  private static final class Watched implements ANTLRErrorListener {
    private final ANTLRErrorListener to;
    volatile boolean called;

    Watched(ANTLRErrorListener to) {
      this.to = to;
    }

    @Override
    public void syntaxError(Recognizer<?, ?> r, Object symbol, int line, int at, String msg, RecognitionException e) {
      called = true;
      to.syntaxError(r, symbol, line, at, msg, e);
    }

    @Override
    public void reportAmbiguity(Parser p, DFA dfa, int start, int stop, boolean exact, java.util.BitSet alts, ATNConfigSet configs) {
      called = true;
      to.reportAmbiguity(p, dfa, start, stop, exact, alts, configs);
    }

    @Override
    public void reportAttemptingFullContext(Parser p, DFA dfa, int start, int stop, java.util.BitSet alts, ATNConfigSet configs) {
      called = true;
      to.reportAttemptingFullContext(p, dfa, start, stop, alts, configs);
    }

    @Override
    public void reportContextSensitivity(Parser p, DFA dfa, int start, int stop, int prediction, ATNConfigSet configs) {
      called = true;
      to.reportContextSensitivity(p, dfa, start, stop, prediction, configs);
    }
  }

  /**
   * The jar's own getTableInfo, renamed by DynamoLocalPatches.java (it reads the table's row of
   * the metadata table on the SQLite queue's thread). Looked up when first needed: this class is
   * compiled against the jar as shipped, which has no such method.
   */
  private static volatile MethodHandle readTableInfo;

  private static TableInfo readTableInfo(SQLiteDBAccess db, String name) {
    try {
      MethodHandle read = readTableInfo;
      if (read == null) {
        read = MethodHandles.publicLookup().findVirtual(SQLiteDBAccess.class, "slipway$getTableInfo", MethodType.methodType(TableInfo.class, String.class));
        readTableInfo = read;
      }
      return (TableInfo) read.invokeExact(db, name);
    } catch (RuntimeException | Error err) {
      throw err;
    } catch (Throwable err) {
      throw new IllegalStateException("reading the description of table " + name, err);
    }
  }

  /** Each database's tables' descriptions, by name, as read between two changes of any table. */
  private static final ConcurrentHashMap<TableKey, TableInfo> TABLES = new ConcurrentHashMap<>();
  /** Far more than a deployment's tables: only a client making ever new tables gets there. */
  private static final int TABLES_KEPT = 256;
  /** Bumped when any change to a table begins and when it ends (returned or thrown). */
  private static final AtomicLong tableChanges = new AtomicLong();
  /** Changes under way: nothing read while one runs is kept. */
  private static final AtomicInteger tablesChanging = new AtomicInteger();

  /** A database (by identity: each DynamoDB Local database has its own SQLiteDBAccess) and a table name. */
  private record TableKey(Object db, String name) {
    @Override
    public boolean equals(Object other) {
      return other instanceof TableKey k && k.db == db && k.name.equals(name);
    }

    @Override
    public int hashCode() {
      return System.identityHashCode(db) * 31 + name.hashCode();
    }
  }

  /**
   * A table's description (DynamoLocalPatches.java routes SQLiteDBAccess.getTableInfo here). The
   * jar reads it from SQLite, on the one thread that runs every SQLite job, several times for
   * every item a request reads or writes (three to four times for a two-item transaction, all of
   * them while the table's write lock is held): in a burst of lease starts, waiting for those
   * jobs was a sixth of the time the lock was held (docs/fleet-scale.md). A description only
   * changes through SQLiteDBAccess's methods that create, update or delete tables, indexes,
   * streams or TTL, which DynamoLocalPatches.java wraps with tablesChanging/tablesChanged; what
   * was read while such a change ran, or across one, is not kept. Each caller gets its own copy
   * (UpdateTable and the index jobs change the description they read before writing it back).
   */
  public static TableInfo tableInfo(SQLiteDBAccess db, String name) {
    if (!PATCHES || name == null) return readTableInfo(db, name);
    TableKey key = new TableKey(db, name);
    TableInfo kept = TABLES.get(key);
    if (kept != null) return copyOfTableInfo(kept);
    long before = tableChanges.get();
    TableInfo read = readTableInfo(db, name);
    if (read == null || tablesChanging.get() != 0 || tableChanges.get() != before) return read;
    if (TABLES.size() >= TABLES_KEPT) TABLES.clear();
    TableInfo copy = copyOfTableInfo(read);
    TABLES.put(key, copy);
    // A change that began after the check above has emptied the map already or will when it
    // ends; one that ended in between bumped the count: either way the copy is not kept.
    if (tablesChanging.get() != 0 || tableChanges.get() != before) TABLES.remove(key, copy);
    return read;
  }

  /** Before a method that may change tables' descriptions runs (DynamoLocalPatches.java). */
  public static void tablesChanging() {
    tablesChanging.incrementAndGet();
    tableChanges.incrementAndGet();
    TABLES.clear();
  }

  /** After it returned or threw. */
  public static void tablesChanged() {
    tableChanges.incrementAndGet();
    TABLES.clear();
    tablesChanging.decrementAndGet();
  }

  /** TableInfo's instance fields, made accessible once. */
  private static final Field[] TABLE_INFO_FIELDS = instanceFields(TableInfo.class);

  /**
   * A description no caller can change through another's (copyFields): its lists and maps are
   * new, their elements shared (strings and the SDK's immutable model objects). A copy is made
   * for every read, with the table's write lock held in a transaction, so it is made in bulk.
   */
  private static TableInfo copyOfTableInfo(TableInfo from) {
    return copyFields(from, TableInfo.class, TABLE_INFO_FIELDS);
  }

  /** A new instance of `type` (no constructor run) with each of `fields` copied from `from` (copyContainer). */
  private static <T> T copyFields(T from, Class<T> type, Field[] fields) {
    try {
      T to = type.cast(UNSAFE.allocateInstance(type));
      for (Field f : fields) f.set(to, copyContainer(f.get(from)));
      return to;
    } catch (ReflectiveOperationException err) {
      throw new IllegalStateException("copying a " + type.getSimpleName(), err);
    }
  }

  private static final sun.misc.Unsafe UNSAFE = unsafe();

  private static sun.misc.Unsafe unsafe() {
    try {
      Field theUnsafe = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
      theUnsafe.setAccessible(true);
      return (sun.misc.Unsafe) theUnsafe.get(null);
    } catch (ReflectiveOperationException err) {
      throw new IllegalStateException(err);
    }
  }

  private static Field[] instanceFields(Class<?> type) {
    List<Field> out = new ArrayList<>();
    for (Field f : type.getDeclaredFields()) {
      if (Modifier.isStatic(f.getModifiers())) continue;
      f.setAccessible(true);
      out.add(f);
    }
    return out.toArray(new Field[0]);
  }

  /**
   * Lists and maps are copied, with the lists and maps they hold; other values are shared (they
   * are immutable or never changed). Copied in bulk, then only container elements replaced: a
   * first version that rebuilt every list and map element by element was a fifth of the work a
   * transaction did under the table's lock.
   */
  private static Object copyContainer(Object value) {
    if (value instanceof List<?> list) {
      List<Object> out = new ArrayList<>(list);
      for (int i = 0; i < out.size(); i++) if (out.get(i) instanceof List || out.get(i) instanceof Map) out.set(i, copyContainer(out.get(i)));
      return out;
    }
    if (value instanceof Map<?, ?> map) {
      Map<Object, Object> out = new LinkedHashMap<>(map);
      for (Map.Entry<Object, Object> e : out.entrySet()) if (e.getValue() instanceof List || e.getValue() instanceof Map) e.setValue(copyContainer(e.getValue()));
      return out;
    }
    return value;
  }

  /** Said on stderr when the cache is in place (infra/local/dynamodb.ts keeps the launcher's lines). */
  static final String CACHED = "DynamoLoopback: table descriptions cached";

  /**
   * DynamoDB Local keeps each table's description (keys, indexes, their SQLite columns) as a JSON
   * blob in SQLite, and reads and parses it again, with Jackson, for every item it reads or writes:
   * with Slipway's ten indexes that parse was over half of the JVM's CPU in a burst of lease
   * creates or starts (issue 16, docs/fleet-scale.md). The two mappers that parse it are replaced
   * by one that parses each distinct blob once and hands every caller its own copy (its lists and
   * maps copied: UpdateTable and UpdateTimeToLive change the one they read before writing it
   * back), so the answers are the same and a changed table is a new blob, parsed anew. Items and
   * requests are parsed as before. Anything unexpected leaves the jar as it is.
   */
  static void cacheTableSchemas() {
    // -Dslipway.schemaCache=false: the jar as shipped (to compare, or to rule the cache out).
    if ("false".equals(System.getProperty("slipway.schemaCache"))) {
      System.err.println("DynamoLoopback: table descriptions not cached (-Dslipway.schemaCache=false)");
      return;
    }
    try {
      // Both fields are found and checked before either is replaced: all or nothing.
      List<Field> fields = new ArrayList<>();
      for (String owner : new String[] {
        "software.amazon.dynamodb.services.local.shared.access.sqlite.SQLiteDBAccessJob",
        "software.amazon.dynamodb.services.local.shared.access.sqlite.SQLiteDBAccess",
      }) {
        Field field = Class.forName(owner).getDeclaredField("MAPPER");
        if (!Modifier.isStatic(field.getModifiers()) || !field.getType().isAssignableFrom(SchemaCachingMapper.class)) throw new IllegalStateException(owner + ".MAPPER");
        fields.add(field);
      }
      // A static final field of a class the JIT has not compiled yet (the server is not built):
      // Unsafe writes it where reflection may not.
      DynamoDbObjectMapper mapper = new SchemaCachingMapper();
      for (Field field : fields) UNSAFE.putObjectVolatile(UNSAFE.staticFieldBase(field), UNSAFE.staticFieldOffset(field), mapper);
      System.err.println(CACHED);
    } catch (Throwable err) {
      System.err.println("DynamoLoopback: table descriptions not cached (" + err + "); DynamoDB Local runs as shipped");
    }
  }

  static final class SchemaCachingMapper extends DynamoDbObjectMapper {
    private static final long serialVersionUID = 1L;
    private static final int MAX_ENTRIES = 64;
    /** TableSchemaInfo's fields, made accessible once (copied for every read of a description). */
    private static final Field[] FIELDS = instanceFields(TableSchemaInfo.class);

    /**
     * Blob content → the description parsed from it (never handed out itself), most recently used
     * first. Found by comparing contents (Arrays.equals, which the JIT vectorizes), not by hashing
     * them: a description with ten indexes is some kilobytes, read several times per item, and
     * hashing it byte by byte on every read was a quarter of the JVM's time in a burst of
     * transactions. A deployment has a handful of tables, so the list is short.
     */
    private final ArrayList<Object[]> parsed = new ArrayList<>();

    @Override
    public <T> T readValue(byte[] src, Class<T> type) throws IOException {
      if (type != TableSchemaInfo.class) return super.readValue(src, type);
      TableSchemaInfo original = null;
      synchronized (parsed) {
        for (int i = 0; i < parsed.size(); i++) {
          Object[] entry = parsed.get(i);
          if (java.util.Arrays.equals((byte[]) entry[0], src)) {
            original = (TableSchemaInfo) entry[1];
            if (i > 0) parsed.add(0, parsed.remove(i));
            break;
          }
        }
      }
      if (original == null) {
        original = (TableSchemaInfo) super.readValue(src, type);
        synchronized (parsed) {
          parsed.add(0, new Object[] {src.clone(), original});
          if (parsed.size() > MAX_ENTRIES) parsed.remove(parsed.size() - 1);
        }
      }
      return type.cast(copyFields(original, TableSchemaInfo.class, FIELDS));
    }
  }

  /** -Dslipway.sqliteInline=false: every SQLite job goes through the queue's thread, as shipped. */
  static final boolean SQLITE_INLINE = PATCHES && !"false".equals(System.getProperty("slipway.sqliteInline"));
  /** Held while a job runs, in the queue's thread or inline: one thread uses the connection at a time. */
  private static final ReentrantLock SQLITE = new ReentrantLock();
  /** The thread running a job inline (under SQLITE): the connection accepts it while it does. */
  private static volatile Thread inlineRunner;
  /**
   * The queue whose thread has run a job: its connection is open and initialized (the thread does
   * both before its first job), so jobs may run inline from then on.
   */
  private static volatile SQLiteQueue readyQueue;

  /**
   * SQLiteQueue's protected executeJob and its connection's field, looked up on first use (the
   * patch program checked that both are there). Either missing: nothing runs inline.
   */
  private static final class Queue {
    static final MethodHandle EXECUTE_JOB = find(lookup -> lookup.findVirtual(SQLiteQueue.class, "executeJob", MethodType.methodType(void.class, SQLiteJob.class)));
    static final MethodHandle CONNECTION = EXECUTE_JOB == null ? null : find(lookup -> lookup.findGetter(SQLiteQueue.class, "myConnection", SQLiteConnection.class));

    interface Lookup {
      MethodHandle in(MethodHandles.Lookup lookup) throws ReflectiveOperationException;
    }

    private static MethodHandle find(Lookup what) {
      try {
        return what.in(MethodHandles.privateLookupIn(SQLiteQueue.class, MethodHandles.lookup()));
      } catch (ReflectiveOperationException err) {
        return null;
      }
    }
  }

  /**
   * SQLiteQueue.execute offers each job here first (DynamoLocalPatches.java). DynamoDB Local hands
   * every SQLite call to the queue's one thread and waits for it: under a table's write lock a
   * transaction makes five to seven such calls, each two thread wake-ups, and in a burst of lease
   * starts those waits were half the time the lock was held. Transactions at concurrency 16 took
   * a sixth to a third less time without them (docs/fleet-scale.md). Here the
   * calling thread runs the job itself, holding SQLITE, which the queue's thread also holds for
   * each job it runs (executeQueued): the connection is still used by one thread at a time, in
   * the same calls, with the same effects. Answers false, and the job is queued as shipped, in the
   * queue's own thread, before the queue has run its first job, once it is stopping, or if the
   * queue's method was not found.
   */
  public static boolean executeInline(SQLiteQueue queue, SQLiteJob<?> job) throws Throwable {
    if (!SQLITE_INLINE || job == null || queue != readyQueue || queue.isDatabaseThread()) return false;
    SQLITE.lock();
    try {
      if (queue.isStopped() || (SQLiteConnection) Queue.CONNECTION.invokeExact(queue) == null) return false;
      Thread was = inlineRunner;
      inlineRunner = Thread.currentThread();
      try {
        Queue.EXECUTE_JOB.invokeExact(queue, (SQLiteJob) job);
      } finally {
        inlineRunner = was;
      }
      return true;
    } finally {
      SQLITE.unlock();
    }
  }

  /** The queue's thread runs each job it takes here, holding SQLITE (in place of its call to executeJob). */
  public static void executeQueued(SQLiteQueue queue, SQLiteJob<?> job) throws Throwable {
    MethodHandle execute = Queue.EXECUTE_JOB;
    if (execute == null) throw new IllegalStateException("SQLiteQueue.executeJob not found");
    SQLITE.lock();
    try {
      execute.invokeExact(queue, (SQLiteJob) job);
    } finally {
      SQLITE.unlock();
    }
    if (readyQueue != queue && Queue.CONNECTION != null) readyQueue = queue;
  }

  /** SQLiteConnection.checkThread returns at once for this thread while it runs a job inline; otherwise it checks as shipped. */
  public static boolean runsJobInline() {
    return inlineRunner == Thread.currentThread();
  }
}
