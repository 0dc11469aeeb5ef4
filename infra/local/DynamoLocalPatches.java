import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.jar.JarFile;
import java.util.zip.ZipEntry;
import jdk.internal.org.objectweb.asm.ClassReader;
import jdk.internal.org.objectweb.asm.ClassWriter;
import jdk.internal.org.objectweb.asm.Opcodes;
import jdk.internal.org.objectweb.asm.Type;
import jdk.internal.org.objectweb.asm.tree.AbstractInsnNode;
import jdk.internal.org.objectweb.asm.tree.ClassNode;
import jdk.internal.org.objectweb.asm.tree.FrameNode;
import jdk.internal.org.objectweb.asm.tree.InsnList;
import jdk.internal.org.objectweb.asm.tree.InsnNode;
import jdk.internal.org.objectweb.asm.tree.JumpInsnNode;
import jdk.internal.org.objectweb.asm.tree.LabelNode;
import jdk.internal.org.objectweb.asm.tree.MethodInsnNode;
import jdk.internal.org.objectweb.asm.tree.MethodNode;
import jdk.internal.org.objectweb.asm.tree.TryCatchBlockNode;
import jdk.internal.org.objectweb.asm.tree.TypeInsnNode;
import jdk.internal.org.objectweb.asm.tree.VarInsnNode;

/**
 * Three places in DynamoDB Local's jar, and two in sqlite4java's, redirected to DynamoLoopback.java,
 * which does their work once instead of on every request, or in the thread that asks for it (issue
 * 16; docs/fleet-scale.md has the profiles and figures):
 *
 * - TransactWriteItemsFunction's constructor: `new DynamoDbObjectMapper()` becomes
 *   `DynamoLoopback.transactionMapper()`, one mapper for every transaction. Its `apply` validates
 *   the request through `DynamoLoopback.validateAndSign`, which also computes the transaction's
 *   idempotency signature there, before the table's lock is taken, and `doWrite`, which runs
 *   under the lock, takes that signature from `DynamoLoopback.transactionSignature`.
 * - DynamoDbExpressionParser's five static methods: `new XParser().parse(text, listener)` becomes
 *   `DynamoLoopback.parseExpression(new XParser(), text, listener)`, which keeps each cleanly
 *   parsed tree.
 * - SQLiteDBAccess: `getTableInfo` becomes `DynamoLoopback.tableInfo`, which keeps each table's
 *   description, and every other public method that is not an item read or write (creating,
 *   updating, deleting tables and indexes, streams, TTL, closing) is wrapped so that it empties
 *   what was kept, before it runs and after it returns or throws.
 * - sqlite4java's SQLiteQueue (DynamoDBLocal_lib/sqlite4java.jar), through which DynamoDB Local
 *   runs every SQLite call: `execute(job)` first offers the job to `DynamoLoopback.executeInline`,
 *   which runs it in the calling thread, and the queue's own thread runs the jobs it takes through
 *   `DynamoLoopback.executeQueued`; both hold one lock while a job runs. SQLiteConnection's
 *   `checkThread` accepts the thread running a job inline (`DynamoLoopback.runsJobInline`). These
 *   two classes are written together or not at all.
 *
 * Run once when infra/local/dynamodb.ts compiles the launcher: it reads each class from the jar
 * and writes the rewritten one into the launcher's class directory, which is ahead of the jar on
 * the class path. Each rewrite replaces one instruction pattern with a static call that leaves
 * the same value on the stack (in sqlite4java's classes, Java 5 ones without stack map frames,
 * two also put a call and a branch at a method's start), and must find exactly the patterns it
 * expects; otherwise nothing is written for that class and the jar's own is loaded. Uses the
 * JDK's own copy of ASM (java.base's jdk.internal.org.objectweb.asm and its tree package,
 * exported to this program by the command line).
 *
 *   java --add-exports java.base/jdk.internal.org.objectweb.asm=ALL-UNNAMED \\
 *        --add-exports java.base/jdk.internal.org.objectweb.asm.tree=ALL-UNNAMED DynamoLocalPatches.java <jar> <out dir>
 */
public class DynamoLocalPatches {
  static final String TRANSACT = "software/amazon/dynamodb/services/local/shared/access/api/dp/TransactWriteItemsFunction";
  static final String MAPPER = "software/amazon/dynamodb/services/local/shared/mapper/DynamoDbObjectMapper";
  static final String EXPRESSIONS = "com/amazon/dynamodb/grammar/DynamoDbExpressionParser";
  static final String GRAMMAR = "com/amazon/dynamodb/grammar/";
  static final String PARSE_DESC = "(Ljava/lang/String;Lorg/antlr/v4/runtime/ANTLRErrorListener;)Lorg/antlr/v4/runtime/tree/ParseTree;";
  static final String HELPER = "DynamoLoopback";
  static final String DB_ACCESS = "software/amazon/dynamodb/services/local/shared/access/sqlite/SQLiteDBAccess";
  static final String QUEUE = "com/almworks/sqlite4java/SQLiteQueue";
  static final String CONNECTION = "com/almworks/sqlite4java/SQLiteConnection";
  static final String JOB = "com/almworks/sqlite4java/SQLiteJob";
  static final String TABLE_INFO_DESC = "(Ljava/lang/String;)Lsoftware/amazon/dynamodb/services/local/shared/access/TableInfo;";
  /**
   * SQLiteDBAccess's public methods that leave every table's description as it was: items read
   * and written (their jobs update the item count and size columns of the metadata table, which
   * getTableInfo does not read), transactions begun and committed, and the table's lock. Every
   * other public method, unknown ones included, is taken to change descriptions.
   */
  static final Set<String> KEEPS_DESCRIPTIONS = Set.of("getRecord", "putRecord", "deleteRecord", "queryRecords", "beginTransaction", "commitTransaction", "getLockForTable");
  /** Methods that do change descriptions and must be among those wrapped, or the class is left as shipped. */
  static final Set<String> CHANGES_DESCRIPTIONS = Set.of("createTable", "deleteTable", "updateTable", "createGSIColumns", "backfillGSI", "deleteGSI");

  public static void main(String[] args) throws IOException {
    if (args.length != 2) throw new IllegalArgumentException("usage: DynamoLocalPatches <DynamoDBLocal.jar> <out dir>");
    int written = 0;
    try (JarFile jar = new JarFile(args[0])) {
      written += write(jar, TRANSACT, 3, Paths.get(args[1]), eachMethod(method -> shareMapper(method) + signBeforeLock(method)));
      written += write(jar, EXPRESSIONS, 5, Paths.get(args[1]), eachMethod(DynamoLocalPatches::cacheParses));
      written += write(jar, DB_ACCESS, 1, Paths.get(args[1]), DynamoLocalPatches::keepTableInfo);
    }
    // sqlite4java's queue and connection: both or neither (a job run in the caller's thread needs
    // the connection to accept that thread).
    Path sqlite = Paths.get(args[0]).resolveSibling("DynamoDBLocal_lib").resolve("sqlite4java.jar");
    try (JarFile jar = new JarFile(sqlite.toFile())) {
      Path staged = Files.createTempDirectory(Paths.get(args[1]), "sqlite");
      try {
        int both = write(jar, QUEUE, 2, staged, node -> hasInlineHooks(node) ? eachMethod(DynamoLocalPatches::runInline).apply(node) : 0)
            + write(jar, CONNECTION, 1, staged, eachMethod(DynamoLocalPatches::confineToRunner));
        if (both == 2) {
          for (String name : new String[] {QUEUE, CONNECTION}) {
            Path file = Paths.get(args[1]).resolve(name + ".class");
            Files.createDirectories(file.getParent());
            Files.move(staged.resolve(name + ".class"), file);
          }
          written += 2;
        }
      } finally {
        try (var files = Files.walk(staged)) {
          files.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        }
      }
    } catch (IOException err) {
      System.out.println("DynamoLocalPatches: " + sqlite + " not read (" + err + "); sqlite4java left as shipped");
    }
    System.out.println("DynamoLocalPatches: " + written + " of 5 classes patched");
  }

  /** Rewrites a class in place; answers how many of the patterns it looks for it rewrote. */
  interface Rewrite {
    int apply(ClassNode node);
  }

  /** A rewrite of each method's instructions, counted over the class. */
  static Rewrite eachMethod(java.util.function.ToIntFunction<MethodNode> rewrite) {
    return node -> {
      int count = 0;
      for (MethodNode method : node.methods) count += rewrite.applyAsInt(method);
      return count;
    };
  }

  /** Rewrites one class; writes it only when its methods held exactly `expected` patterns. */
  static int write(JarFile jar, String name, int expected, Path out, Rewrite rewrite) throws IOException {
    ZipEntry entry = jar.getEntry(name + ".class");
    if (entry == null) {
      System.out.println("DynamoLocalPatches: " + name + " not in the jar; left as shipped");
      return 0;
    }
    ClassNode node = new ClassNode();
    try (var in = jar.getInputStream(entry)) {
      new ClassReader(in.readAllBytes()).accept(node, 0);
    }
    int count = rewrite.apply(node);
    if (count != expected) {
      System.out.println("DynamoLocalPatches: " + name + ": " + count + " of the " + expected + " expected calls found; left as shipped");
      return 0;
    }
    // Each rewrite swaps instructions for one static call that leaves the same value on the
    // stack, with no branch target between them, or adds a method with its own frame and sizes:
    // the class's stack map frames and maximum sizes stay valid, so none are computed (which
    // would load the jar's classes here).
    ClassWriter writer = new ClassWriter(0);
    node.accept(writer);
    Path file = out.resolve(name + ".class");
    Files.createDirectories(file.getParent());
    Files.write(file, writer.toByteArray());
    return 1;
  }

  /** In the constructor: NEW DynamoDbObjectMapper, DUP, INVOKESPECIAL <init>()V → INVOKESTATIC DynamoLoopback.transactionMapper(). */
  static int shareMapper(MethodNode method) {
    if (!method.name.equals("<init>")) return 0;
    int count = 0;
    for (AbstractInsnNode insn : method.instructions.toArray()) {
      AbstractInsnNode dup = insn.getNext();
      AbstractInsnNode init = dup == null ? null : dup.getNext();
      if (insn.getOpcode() == Opcodes.NEW && ((TypeInsnNode) insn).desc.equals(MAPPER)
          && dup != null && dup.getOpcode() == Opcodes.DUP
          && init instanceof MethodInsnNode call && call.getOpcode() == Opcodes.INVOKESPECIAL
          && call.owner.equals(MAPPER) && call.name.equals("<init>") && call.desc.equals("()V")) {
        method.instructions.set(call, new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "transactionMapper", "()L" + MAPPER + ";", false));
        method.instructions.remove(dup);
        method.instructions.remove(insn);
        count++;
      }
    }
    return count;
  }

  static final String REQUEST = "software/amazon/awssdk/services/dynamodb/model/TransactWriteItemsRequest";

  /**
   * In `apply`: INVOKEVIRTUAL validateRequest(request) → INVOKESTATIC DynamoLoopback.validateAndSign(this,
   * request). In `doWrite`: INVOKEVIRTUAL calculateTransactionSignature(items) → INVOKESTATIC
   * DynamoLoopback.transactionSignature(this, items). The same operands, the same result.
   */
  static int signBeforeLock(MethodNode method) {
    int count = 0;
    for (AbstractInsnNode insn : method.instructions.toArray()) {
      if (!(insn instanceof MethodInsnNode call) || call.getOpcode() != Opcodes.INVOKEVIRTUAL || !call.owner.equals(TRANSACT)) continue;
      if (method.name.equals("apply") && call.name.equals("validateRequest") && call.desc.equals("(L" + REQUEST + ";)V")) {
        method.instructions.set(call, new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "validateAndSign", "(L" + TRANSACT + ";L" + REQUEST + ";)V", false));
        count++;
      } else if (method.name.equals("doWrite") && call.name.equals("calculateTransactionSignature") && call.desc.equals("(Ljava/util/List;)[B")) {
        method.instructions.set(call, new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "transactionSignature", "(L" + TRANSACT + ";Ljava/util/List;)[B", false));
        count++;
      }
    }
    return count;
  }

  /**
   * In the static parse methods: INVOKEVIRTUAL com/amazon/dynamodb/grammar/XParser.parse(String,
   * ANTLRErrorListener) → INVOKESTATIC DynamoLoopback.parseExpression(AbstractTwoStageExpressionParser,
   * String, ANTLRErrorListener): the same three operands, the same result.
   */
  static int cacheParses(MethodNode method) {
    if ((method.access & Opcodes.ACC_STATIC) == 0 || !method.name.startsWith("parse")) return 0;
    int count = 0;
    for (AbstractInsnNode insn : method.instructions.toArray()) {
      if (insn instanceof MethodInsnNode call && call.getOpcode() == Opcodes.INVOKEVIRTUAL
          && call.owner.startsWith(GRAMMAR) && call.owner.endsWith("Parser") && call.name.equals("parse") && call.desc.equals(PARSE_DESC)) {
        method.instructions.set(call, new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "parseExpression", "(L" + GRAMMAR + "AbstractTwoStageExpressionParser;" + PARSE_DESC.substring(1), false));
        count++;
      }
    }
    return count;
  }

  /**
   * SQLiteDBAccess: the original getTableInfo is renamed `slipway$getTableInfo` (public, for
   * DynamoLoopback's method handle) and a new getTableInfo forwards to
   * `DynamoLoopback.tableInfo(this, name)`. Each public instance method not in KEEPS_DESCRIPTIONS
   * is renamed `slipway$<name>` (private) and replaced by a method of its name and descriptor that
   * calls `DynamoLoopback.tablesChanging()`, then the original, then `DynamoLoopback.tablesChanged()`,
   * also when the original throws. Answers 1 when getTableInfo and every method of
   * CHANGES_DESCRIPTIONS were found, 0 otherwise (then the class is not written).
   */
  static int keepTableInfo(ClassNode node) {
    List<MethodNode> added = new ArrayList<>();
    Set<String> wrapped = new HashSet<>();
    boolean forwarded = false;
    for (MethodNode method : node.methods) {
      if ((method.access & Opcodes.ACC_PUBLIC) == 0 || (method.access & (Opcodes.ACC_STATIC | Opcodes.ACC_ABSTRACT | Opcodes.ACC_NATIVE | Opcodes.ACC_SYNTHETIC | Opcodes.ACC_BRIDGE)) != 0 || method.name.startsWith("<")) continue;
      if (method.name.equals("getTableInfo")) {
        if (!method.desc.equals(TABLE_INFO_DESC)) return 0;
        added.add(forwardTableInfo(method));
        method.name = "slipway$getTableInfo";
        forwarded = true;
      } else if (!KEEPS_DESCRIPTIONS.contains(method.name)) {
        added.add(wrapChange(node.name, method));
        wrapped.add(method.name);
        method.name = "slipway$" + method.name;
        method.access = (method.access & ~(Opcodes.ACC_PUBLIC | Opcodes.ACC_PROTECTED)) | Opcodes.ACC_PRIVATE;
      }
    }
    if (!forwarded || !wrapped.containsAll(CHANGES_DESCRIPTIONS)) {
      System.out.println("DynamoLocalPatches: SQLiteDBAccess: getTableInfo " + (forwarded ? "found" : "not found") + ", changing methods wrapped " + wrapped);
      return 0;
    }
    node.methods.addAll(added);
    return 1;
  }

  /** `getTableInfo(name)` → `return DynamoLoopback.tableInfo(this, name)`. */
  static MethodNode forwardTableInfo(MethodNode original) {
    MethodNode forward = new MethodNode(original.access, original.name, original.desc, original.signature, original.exceptions.toArray(new String[0]));
    InsnList in = forward.instructions;
    in.add(new VarInsnNode(Opcodes.ALOAD, 0));
    in.add(new VarInsnNode(Opcodes.ALOAD, 1));
    in.add(new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "tableInfo", "(L" + DB_ACCESS + ";" + TABLE_INFO_DESC.substring(1), false));
    in.add(new InsnNode(Opcodes.ARETURN));
    forward.maxStack = 2;
    forward.maxLocals = 2;
    return forward;
  }

  /**
   * A method of `original`'s name and descriptor: tablesChanging(); try { r = slipway$name(args) }
   * catch (any t) { tablesChanged(); throw t; } tablesChanged(); return r. The only branch target
   * is the handler, whose frame is written out in full.
   */
  static MethodNode wrapChange(String owner, MethodNode original) {
    MethodNode wrapper = new MethodNode(original.access & ~Opcodes.ACC_SYNCHRONIZED, original.name, original.desc, original.signature, original.exceptions.toArray(new String[0]));
    Type[] args = Type.getArgumentTypes(original.desc);
    Type result = Type.getReturnType(original.desc);
    LabelNode start = new LabelNode();
    LabelNode end = new LabelNode();
    LabelNode handler = new LabelNode();
    InsnList in = wrapper.instructions;
    in.add(new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "tablesChanging", "()V", false));
    in.add(start);
    in.add(new VarInsnNode(Opcodes.ALOAD, 0));
    Object[] locals = new Object[args.length + 1];
    locals[0] = owner;
    int slot = 1;
    for (int i = 0; i < args.length; i++) {
      in.add(new VarInsnNode(args[i].getOpcode(Opcodes.ILOAD), slot));
      slot += args[i].getSize();
      locals[i + 1] = frameType(args[i]);
    }
    in.add(new MethodInsnNode(Opcodes.INVOKESPECIAL, owner, "slipway$" + original.name, original.desc, false));
    in.add(end);
    in.add(new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "tablesChanged", "()V", false));
    in.add(new InsnNode(result.getOpcode(Opcodes.IRETURN)));
    in.add(handler);
    in.add(new FrameNode(Opcodes.F_FULL, locals.length, locals, 1, new Object[] {"java/lang/Throwable"}));
    in.add(new VarInsnNode(Opcodes.ASTORE, slot));
    in.add(new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "tablesChanged", "()V", false));
    in.add(new VarInsnNode(Opcodes.ALOAD, slot));
    in.add(new InsnNode(Opcodes.ATHROW));
    wrapper.tryCatchBlocks.add(new TryCatchBlockNode(start, end, handler, null));
    wrapper.maxLocals = slot + 1;
    wrapper.maxStack = Math.max(slot, Math.max(result.getSize(), 1));
    return wrapper;
  }

  /** An argument's type as a stack map frame names it. */
  static Object frameType(Type type) {
    switch (type.getSort()) {
      case Type.BOOLEAN: case Type.CHAR: case Type.BYTE: case Type.SHORT: case Type.INT: return Opcodes.INTEGER;
      case Type.FLOAT: return Opcodes.FLOAT;
      case Type.LONG: return Opcodes.LONG;
      case Type.DOUBLE: return Opcodes.DOUBLE;
      case Type.ARRAY: return type.getDescriptor();
      default: return type.getInternalName();
    }
  }

  /**
   * SQLiteQueue: `execute(job)` first offers the job to `DynamoLoopback.executeInline(this, job)`
   * and returns it, done, when that ran it; the queue's thread runs each job it takes through
   * `DynamoLoopback.executeQueued(this, job)` instead of `executeJob(job)`. Both hold one lock
   * while a job runs, so the connection is used by one thread at a time.
   */
  static int runInline(MethodNode method) {
    int count = 0;
    if (method.name.equals("execute") && method.desc.equals("(L" + JOB + ";)L" + JOB + ";")) {
      // The class is Java 5 (version 49): no stack map frames to keep.
      LabelNode queued = new LabelNode();
      InsnList in = new InsnList();
      in.add(new VarInsnNode(Opcodes.ALOAD, 0));
      in.add(new VarInsnNode(Opcodes.ALOAD, 1));
      in.add(new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "executeInline", "(L" + QUEUE + ";L" + JOB + ";)Z", false));
      in.add(new JumpInsnNode(Opcodes.IFEQ, queued));
      in.add(new VarInsnNode(Opcodes.ALOAD, 1));
      in.add(new InsnNode(Opcodes.ARETURN));
      in.add(queued);
      method.instructions.insert(in);
      method.maxStack = Math.max(method.maxStack, 2);
      count++;
    }
    if (method.name.equals("queueFunction")) {
      for (AbstractInsnNode insn : method.instructions.toArray()) {
        if (insn instanceof MethodInsnNode call && call.getOpcode() == Opcodes.INVOKEVIRTUAL && call.owner.equals(QUEUE) && call.name.equals("executeJob") && call.desc.equals("(L" + JOB + ";)V")) {
          method.instructions.set(call, new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "executeQueued", "(L" + QUEUE + ";L" + JOB + ";)V", false));
          count++;
        }
      }
    }
    return count;
  }

  /** What DynamoLoopback looks up in SQLiteQueue by name: `executeJob(SQLiteJob)` and the `myConnection` field. */
  static boolean hasInlineHooks(ClassNode node) {
    return node.methods.stream().anyMatch(m -> m.name.equals("executeJob") && m.desc.equals("(L" + JOB + ";)V"))
        && node.fields.stream().anyMatch(f -> f.name.equals("myConnection") && f.desc.equals("L" + CONNECTION + ";"));
  }

  /** SQLiteConnection.checkThread: returns at once when `DynamoLoopback.runsJobInline()` (the thread running a job inline). */
  static int confineToRunner(MethodNode method) {
    if (!method.name.equals("checkThread") || !method.desc.equals("()V")) return 0;
    LabelNode check = new LabelNode();
    InsnList in = new InsnList();
    in.add(new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "runsJobInline", "()Z", false));
    in.add(new JumpInsnNode(Opcodes.IFEQ, check));
    in.add(new InsnNode(Opcodes.RETURN));
    in.add(check);
    method.instructions.insert(in);
    method.maxStack = Math.max(method.maxStack, 1);
    return 1;
  }
}
